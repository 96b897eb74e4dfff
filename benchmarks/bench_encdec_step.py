"""One EncDec training step (forward + backward) on the first events of a store: time and peak memory.

The batch is built the way the training loop builds it (`load_arrays` + `collate`), the model with the
default architecture; the median of `--repeats` steps after one warm-up step is printed with the
process's peak RSS. Run it at two commits to compare decoder implementations on the same events:

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_encdec_step.py \\
        --data results/data/redvid-helical-10-50/train --events 8
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_encdec_step.py \\
        --data results/data/trackml-200-500/train --events 4
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="event store (a training split)")
    p.add_argument("--events", type=int, default=8, help="events in the batch (the first ones of the store)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from trackpipe.io.store import EventStore
    from trackpipe.models.registry import build_model, resolve_config
    from trackpipe.targets import fit_preprocessing
    from trackpipe.train.data import collate, load_tables
    from trackpipe.train.locality import load_arrays

    store = EventStore(args.data)
    ids = store.event_ids[:args.events]
    cfg = resolve_config("encdec", None)
    hits, particles = load_tables(store, ids)
    prep = fit_preprocessing(hits, particles, kind=cfg["targets"]["kind"], bins=cfg["targets"]["bins"],
                             inputs=cfg["targets"]["inputs"])
    batch = collate(load_arrays(store, prep, ids, None), np.arange(len(ids)))
    torch.manual_seed(0)
    model = build_model(cfg, prep)
    times = []
    for _ in range(args.repeats + 1):
        t0 = time.perf_counter()
        loss, _ = model.loss(model(batch), batch)
        loss.backward()
        times.append(time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| events | hits | step s, median of {args.repeats} | peak RSS MB |\n|---|---|---|---|")
    print(f"| {len(ids)} | {int(batch['valid'].sum())} | {np.median(times[1:]):.3f} | {peak_mb:.0f} |")


if __name__ == "__main__":
    main()
