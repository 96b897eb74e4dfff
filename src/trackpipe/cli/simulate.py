"""`trackpipe simulate`: build one named dataset (or one shard of it) into split event stores.

Sharded builds: run ``--shard I/N --out DIR_I`` for I = 0..N-1, then
``--merge DIR_0 ... DIR_N-1 --out DIR`` joins them (and writes the validation plots).
"""

from __future__ import annotations

import json

from ..datasets import DATASETS, build_dataset, merge_dataset
from ..errors import ConfigError


def _shard(text: str):
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard expects I/N (e.g. 0/4), got {text!r}") from None
    return i, n


def add_arguments(p) -> None:
    p.add_argument("--dataset", required=True, help=f"dataset name, e.g. one of: {', '.join(DATASETS)}")
    p.add_argument("--events", type=int, default=None, help="number of source events (default: the dataset's)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the dataset's)")
    p.add_argument("--shard", default="0/1", help="build part I of N of the source events (default 0/1)")
    p.add_argument("--out", required=True, help="output directory (train/val/test stores + dataset.json)")
    p.add_argument("--config", default=None,
                   help="JSON file or inline JSON object with the dataset's config section (overrides defaults)")
    p.add_argument("--trackml-csv", default=None, help="use real TrackML events from this directory/zip as sources")
    p.add_argument("--redvid-csv", default=None, help="use the events of this REDVID CSV file instead of simulating")
    p.add_argument("--reference-trackml", default=None, help="real TrackML directory overlaid on validation plots")
    p.add_argument("--merge", nargs="+", default=None, metavar="SHARD_DIR",
                   help="instead of simulating, merge these shard directories of --dataset into --out")
    p.add_argument("--no-plots", action="store_true", help="skip the validation plots")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")


def _section(text):
    if text is None:
        return None
    from pathlib import Path

    try:
        raw = Path(text).read_text() if not text.lstrip().startswith("{") else text
        section = json.loads(raw)
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"--config: cannot read a JSON object from {text!r}: {e}") from None
    if not isinstance(section, dict):
        raise ConfigError("--config must hold a JSON object")
    return section


def run(args) -> int:
    if args.merge:
        summary = merge_dataset(args.merge, args.out, name=args.dataset, reference_trackml=args.reference_trackml,
                                overwrite=args.overwrite, plots=not args.no_plots)
        counts = ", ".join(f"{k} {v}" for k, v in summary["events"].items())
        print(f"{args.dataset}: merged {len(args.merge)} shard(s): {counts} -> {args.out}")
        return 0
    summary = build_dataset(args.dataset, _section(args.config), args.out, n_events=args.events, seed=args.seed,
                            shard=_shard(args.shard), trackml_csv=args.trackml_csv, redvid_csv=args.redvid_csv,
                            reference_trackml=args.reference_trackml, overwrite=args.overwrite,
                            plots=False if args.no_plots else None)
    counts = ", ".join(f"{k} {v}" for k, v in summary["events"].items())
    print(f"{args.dataset}: {summary['source_events']} source events, shard {args.shard}: {counts} -> {args.out}")
    return 0
