"""The score a class set allows: tracks = the hits' TRUE classes, scored on a dataset's test split.

    python benchmarks/bench_class_ceiling.py --data DATASET_DIR [--kinds redvid-helical,redvid-helical-direction]
        [--bins JSON ...] [--fit-events 300]

A one-shot classifier (EncCla, JM, the U-Net) turns classes into tracks, so two particles of one event
that share a class are merged whatever the model learns: this script measures that cap per parameter
set and bin choice. Bin edges are fitted on the first --fit-events training events, as training fits
them on the training split. Scored by `trackpipe.evaluate.score_submission`, which reports the level's
headline (FitAccuracy without momenta in the truth, i.e. REDVID, the TrackML score otherwise). One row
per (set, bins): number of track classes, the metric and its mean over the test events.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def ceiling(prep, events, test_path) -> tuple[str, float]:
    """(headline metric, its value) of the tracks = true classes, scored by the project's evaluator."""
    from trackpipe.evaluate import score_submission
    from trackpipe.tracking.assign import tracks_from_classes

    submission = pd.concat([pd.DataFrame({"event_id": ev.event_id, "hit_id": ev.hits.hit_id.to_numpy(),
                                          "track_id": tracks_from_classes(prep.encode(ev.hits, ev.particles)["cls"],
                                                                          prep.noise_class)})
                            for ev in events], ignore_index=True)
    metrics = score_submission(test_path, submission)
    return metrics["headline"], float(metrics[metrics["headline"]])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="dataset directory with train/ and test/ stores")
    ap.add_argument("--kinds", default="auto", help="comma-separated parameter sets (targets.kind)")
    ap.add_argument("--bins", action="append", default=[], help="a targets.bins JSON object; repeatable")
    ap.add_argument("--fit-events", type=int, default=300)
    args = ap.parse_args()

    from trackpipe.errors import ConfigError
    from trackpipe.io.store import EventStore
    from trackpipe.targets import fit_preprocessing

    train = EventStore(Path(args.data) / "train")
    fit = [train.read_event(int(i)) for i in train.event_ids[:args.fit_events]]
    hits = pd.concat([e.hits for e in fit], ignore_index=True)
    particles = pd.concat([e.particles for e in fit], ignore_index=True)
    test_path = Path(args.data) / "test"
    test_store = EventStore(test_path)
    test = [test_store.read_event(int(i)) for i in test_store.event_ids]
    print(f"{args.data}: {len(test)} test events; edges from {len(fit)} training events")
    print(f"{'parameter set':<26} {'bins':<44} {'classes':>8} {'metric':>14} {'ceiling':>8}")
    for kind in args.kinds.split(","):
        for bins in [None] + [json.loads(b) for b in args.bins]:
            try:
                prep = fit_preprocessing(hits, particles, kind=kind, bins=bins)
            except ConfigError as exc:  # a bins object that names another set's parameters
                print(f"{kind:<26} {json.dumps(bins):<44} skipped: {exc}")
                continue
            bins_text = json.dumps(dict(zip(prep.class_params, prep.bins_per_param)))
            metric, value = ceiling(prep, test, test_path)
            print(f"{prep.kind:<26} {bins_text:<44} {prep.n_track_classes:>8} {metric:>14} {value:>8.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
