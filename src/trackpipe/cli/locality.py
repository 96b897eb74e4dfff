"""`trackpipe locality`: locality clustering metrics per region (barrel, endcap) for one or all algorithms."""

from __future__ import annotations

import json

from ..errors import ConfigError
from .options import json_object



def add_arguments(p) -> None:
    p.add_argument("--data", required=True, help="event store directory or TrackML directory / zip")
    p.add_argument("--algorithm", default="all",
                   help="dbscan | iterative_window | density_peaks | grid_window | all (default)")
    p.add_argument("--params", default=None,
                   help='JSON (inline or a file): {"projection": {...}, "clustering": {ALGO: {"barrel": {...}, '
                        '"endcap": {...}}}, "blocks": {...}}')
    p.add_argument("--max-events", type=int, default=None, help="use only the first N events")
    p.add_argument("--volumes", default="7,8,9", help="comma-separated volume ids to keep, or 'all' (default: pixel)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _load_params(text):
    params = json_object(text, "--params")
    if set(params) - {"projection", "clustering", "blocks", "metrics"}:
        raise ConfigError("--params takes an object with keys projection, clustering, blocks, metrics")
    return params


def run(args) -> int:
    from ..locality.clustering import ALGORITHMS
    from ..locality.study import compare_clustering

    algorithms = list(ALGORITHMS) if args.algorithm == "all" else [args.algorithm]
    for a in algorithms:
        if a not in ALGORITHMS:
            raise ConfigError(f"unknown algorithm {a!r}; choose from {', '.join(ALGORITHMS)} or all")
    volumes = None if args.volumes == "all" else tuple(int(v) for v in args.volumes.split(","))
    res = compare_clustering(args.data, algorithms, _load_params(args.params), volumes=volumes, max_events=args.max_events)
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
        return 0
    # recon. ratio = >= 50 % of a particle's hits in one cluster (seed 002); full = all of them; oracle DM =
    # the DM efficiency of track formation on a perfect embedding (the ceiling the neighbourhoods allow)
    print(f"{'algorithm':<17} {'region':<7} {'recon.ratio':>11} {'full':>7} {'oracle DM':>9} {'attn.frac':>10} "
          f"{'clusters':>9} {'cluster DM':>10} {'s/event':>8}")
    for algo, regions in res.items():
        for region in ("barrel", "endcap", "all"):
            m = regions[region]
            print(f"{algo:<17} {region:<7} {m['reconstructible_ratio']:>11.4f} {m['full_containment']:>7.4f} "
                  f"{m['oracle_dm_efficiency']:>9.4f} {m['attention_fraction']:>10.6f} "
                  f"{m['n_clusters']:>9.0f} {m['cluster_dm_efficiency']:>10.4f} {m['seconds_per_event']:>8.3f}")
    return 0
