"""Attention neighbourhoods that do not cut tracks (issue 15 item 2): schemes x region on <mu> = 200 events.

    python benchmarks/bench_neighbourhoods.py --data STORE [--max-events 4] [--schemes a,b,...]

``STORE`` is an ``hllhc-pixel`` event store (``trackpipe simulate --dataset hllhc-pixel``; its pixel
volumes are used). Per scheme and region (barrel, endcap, all) the medians over the events of:
the seed-002 reconstructible ratio (>= 50 % of a particle's hits in one neighbourhood), the full
containment (all of them in one), the oracle DM efficiency (the project's track formation on a perfect
embedding: the ceiling the neighbourhoods put on the tracker), the attention fraction (sum of squared
neighbourhood sizes over N_region²) and the time per event of projection + clustering + block tables.
Target: oracle DM >= 0.97 in the barrel and in the endcaps at an attention fraction <= 0.0025.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trackpipe.locality.blocks import build_blocks  # noqa: E402
from trackpipe.locality.events import open_events, pixel_hits  # noqa: E402
from trackpipe.locality.metrics import locality_metrics  # noqa: E402
from trackpipe.locality.pipeline import REGION_DEFAULTS, cluster_event  # noqa: E402

_OVERLAP = {"overlap_u": 0.5, "overlap_v": 0.5}
# name -> (algorithm, per-region parameters); None = the pipeline's defaults for that algorithm.
# iterative_window: the old default of the tracker (8 x 300 mm barrel, 8 x 8 mm endcap windows, disjoint);
# grid_old: the old grid_window defaults (5 x 200 / 5 x 5 mm, barrel overlap along R·phi only);
# grid_3x160, grid_4x120: those window sizes (barrel / endcap square), overlap 0.5 on both axes;
# grid_default: the new defaults (3.5 x 130 / 3.5 x 3.5 mm, overlap 0.5 on both axes).
SCHEMES = {
    "iterative_window": ("iterative_window", {"barrel": {"width_u": 8.0, "width_v": 300.0},
                                                            "endcap": {"width_u": 8.0, "width_v": 8.0}}),
    "dbscan": ("dbscan", None),
    "grid_old": ("grid_window", {
        "barrel": {"width_u": 5.0, "width_v": 200.0, "overlap_u": 0.5, "overlap_v": 0.0},
        "endcap": {"width_u": 5.0, "width_v": 5.0, **_OVERLAP}}),
    "grid_3x160": ("grid_window", {"barrel": {"width_u": 3.0, "width_v": 160.0, **_OVERLAP},
                                   "endcap": {"width_u": 3.0, "width_v": 3.0, **_OVERLAP}}),
    "grid_4x120": ("grid_window", {"barrel": {"width_u": 4.0, "width_v": 120.0, **_OVERLAP},
                                                            "endcap": {"width_u": 4.0, "width_v": 4.0, **_OVERLAP}}),
    "grid_default": ("grid_window", None),
}
KEYS = ("reconstructible_ratio", "full_containment", "oracle_dm_efficiency", "attention_fraction", "n_clusters")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="hllhc-pixel event store")
    ap.add_argument("--max-events", type=int, default=4)
    ap.add_argument("--schemes", default=None, help="comma-separated scheme names (default: all)")
    args = ap.parse_args()
    names = list(SCHEMES) if args.schemes is None else [s.strip() for s in args.schemes.split(",")]
    ids, read = open_events(args.data)
    events = []
    for eid in ids[:args.max_events]:
        ev = read(eid)
        events.append((eid, pixel_hits(ev.hits, event=eid), ev.particles))
    print(f"{len(events)} events, {statistics.median(len(h) for _, h, _ in events):.0f} pixel hits (median); "
          f"grid_window defaults: {REGION_DEFAULTS['grid_window']}")
    print(f"| scheme | region | reconstructible | full containment | oracle DM | attention fraction | clusters "
          f"| s / event |\n|---|---|---|---|---|---|---|---|")
    for name in names:
        algorithm, params = SCHEMES[name]
        rows, seconds = [], []
        for eid, hits, particles in events:
            t0 = time.perf_counter()
            r = cluster_event(hits, algorithm, params, event=eid)
            build_blocks(r.hit_index, r.cluster_id, r.n_hits)
            seconds.append(time.perf_counter() - t0)
            rows.append(locality_metrics(hits, particles, r, event=eid, oracle=True))
        for region in ("barrel", "endcap", "all"):
            med = {k: statistics.median(m[region][k] for m in rows) for k in KEYS}
            print(f"| {name} | {region} | {med['reconstructible_ratio']:.3f} | {med['full_containment']:.3f} | "
                  f"{med['oracle_dm_efficiency']:.3f} | {med['attention_fraction']:.5f} | {med['n_clusters']:.0f} | "
                  f"{statistics.median(seconds):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
