"""Ingest + reduce throughput of a dataset read from files: what one `ingest_shard` job does per source event.

Times, on one core, the median of `--repeats` runs of: reading the events (TrackML without cells, as
the datasets do), the reduction alone (`reduce` of the dataset section), and the whole shard build
(`build_dataset`: read, reduce, validate, write the split stores and dataset.json). Prints source
events per second per core and the hits per source event (to scale to other event sizes):

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_ingest.py --path ../shared/data/trackml
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_ingest.py --path '../data/trackml/train_*.zip' --events 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

# The paper's level 4 (TrackML 10-50): pixel volumes, 10-50 particles per reduced event, 5 repeats.
LEVEL4 = {"volumes": [7, 8, 9], "n_particles": [10, 50], "repeats": 5, "noise": "proportional"}


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--path", required=True, help="source path: file, directory or glob")
    p.add_argument("--format", default="trackml")
    p.add_argument("--events", type=int, default=None, help="first N source events (default all)")
    p.add_argument("--reduce", default=json.dumps(LEVEL4), help="JSON reduce section (null: full events)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    from trackpipe.datasets import build_dataset, dataset_section
    from trackpipe.reduce import reduce_event, source_rng
    from trackpipe.sources import open_dataset_source

    source = {"format": args.format, "path": args.path}
    section = {"source": source, "events": args.events, "reduce": json.loads(args.reduce), "split": [1, 1, 1],
               "plots": False}
    sec = dataset_section("bench", section)
    src = open_dataset_source(source, limit=args.events)
    ids = src.event_ids
    kw = {"with_cells": False} if args.format == "trackml" else {}
    events = [src.read_event(e, **kw) for e in ids]  # warm-up (imports, file cache)
    n_hits = sum(len(ev.hits) for ev in events) / len(events)

    t_read = _median_time(lambda: [src.read_event(e, **kw) for e in ids], args.repeats)
    t_reduce = 0.0
    if sec["reduce"] is not None:
        t_reduce = _median_time(lambda: [list(reduce_event(ev, sec["reduce"], source_rng(1, ev.event_id)))
                                         for ev in events], args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        runs = iter(range(args.repeats))
        t_build = _median_time(lambda: build_dataset("bench", section, Path(tmp) / str(next(runs)), plots=False),
                               args.repeats)
    n = len(ids)
    print(json.dumps({
        "source": args.path, "source_events": n, "hits_per_source_event": round(n_hits, 1),
        "reduce": sec["reduce"], "repeats": args.repeats,
        "read_s_per_event": round(t_read / n, 4), "reduce_s_per_event": round(t_reduce / n, 4),
        "build_s_per_event": round(t_build / n, 4),
        "events_per_s_per_core": round(n / t_build, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
