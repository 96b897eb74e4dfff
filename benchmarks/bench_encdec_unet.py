"""EncDec (and sparse U-Net) quality and speed on REDVID-like helical 10-50 tracks.

Trains each model through `trackpipe.train.loop.train` for a wall-clock budget, then on the test
split measures: EncDec next-hit accuracy (5 % margin, teacher forcing), full-event decoding with
truth seeds (paper protocol: TrackML score / FitAccuracy with seed hits excluded) and with the
geometric seed finder (plain score, no truth used), wall-clock per event (median of the events and
of several repeats of the largest one); U-Net TrackML score / FitAccuracy and time per event.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_encdec_unet.py \\
        --data results/data/redvid-helical-10-50 --minutes 20 --out /tmp/bench_encdec
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def _bench_encdec(args, out: Path):
    from trackpipe.encdec_protocol import evaluate_encdec_protocol
    from trackpipe.io.store import EventStore
    from trackpipe.metrics import fit_accuracy, trackml_score
    from trackpipe.predict import load_model
    from trackpipe.tracking.encdec_decode import reconstruct_event
    from trackpipe.train.loop import train

    data = Path(args.data)
    if args.evaluate_only:
        history = pd.read_csv(out / "encdec" / "history.csv")
        print(f"encdec: evaluating the model in {out / 'encdec'} as it is (no training)")
    else:
        t0 = time.monotonic()
        res = train("encdec", data / "train", out / "encdec", val=data / "val", max_minutes=args.minutes,
                    epochs=args.epochs, seed=0, threads=args.threads)
        history = res.history
        print(f"encdec training: {res.status}, {res.epochs_done} epochs, best {res.best_epoch}, "
              f"{(time.monotonic() - t0) / 60:.1f} min (this call)")
    print(history[["epoch", "train_loss", "val_loss", "val_next_hit", "val_stop", "epoch_seconds"]]
          .to_string(index=False))
    print(f"training time over all epochs: {history.epoch_seconds.sum() / 60:.1f} min")
    # Paper protocol (truth seeds, seed hits excluded, teacher-forced next-hit accuracy): the same
    # function the workflow's encdec_protocol rule runs.
    protocol = evaluate_encdec_protocol(out / "encdec", data / "test", max_events=args.events, threads=args.threads)
    # Full-event reconstruction without truth (geometric seeds, every hit scored).
    model, cfg, _ = load_model(out / "encdec", torch.device("cpu"))
    test = EventStore(data / "test")
    ids = test.event_ids[:args.events]
    geo, times = [], []
    with torch.inference_mode():
        for eid in ids:
            hits = test.read_event(eid).hits
            w = time.perf_counter()
            tracks, _, _ = reconstruct_event(model, hits, {**cfg["tracking"], "seeds": "geometric"})
            times.append(time.perf_counter() - w)
            truth = hits[["event_id", "hit_id", "particle_id", "weight"]]
            sub = hits[["event_id", "hit_id"]].assign(track_id=tracks)
            geo.append((trackml_score(truth, sub), fit_accuracy(truth, sub)))
        big = max(ids, key=lambda e: test.read_event(e).particles.shape[0])
        hits = test.read_event(big).hits
        reps = []
        for _ in range(5):
            w = time.perf_counter()
            reconstruct_event(model, hits, {**cfg["tracking"], "seeds": "geometric"})
            reps.append(time.perf_counter() - w)
    geo = np.asarray(geo)
    n_tracks = int((hits.particle_id.unique() != 0).sum())
    print(f"\nEncDec on {len(ids)} test events")
    print("| metric | value |\n|---|---|")
    print(f"| next-hit accuracy (5 % margin, teacher forcing) | {protocol['next_hit_accuracy']:.3f} "
          f"({protocol['n_next_hit_predictions']} predictions) |")
    print(f"| TrackML score / FitAccuracy (truth seeds, seed hits excluded) | "
          f"{protocol['seed_excluded_trackml_score']:.3f} / {protocol['seed_excluded_fit_accuracy']:.3f} |")
    print(f"| wall s per event (truth seeds), median | {protocol['truth_seeded_wall_ms_median'] / 1e3:.3f} |")
    print(f"| TrackML score / FitAccuracy (geometric seeds, all hits) | {geo[:, 0].mean():.3f} / {geo[:, 1].mean():.3f} |")
    print(f"| wall s per event (geometric seeds), median | {np.median(times):.3f} |")
    print(f"| wall s, largest event ({n_tracks} tracks, {len(hits)} hits), median of 5 | {np.median(reps):.3f} |")


def _bench_unet(args, out: Path):
    from trackpipe.io.store import EventStore
    from trackpipe.metrics import fit_accuracy, trackml_score
    from trackpipe.predict import predict
    from trackpipe.train.loop import train

    data = Path(args.data)
    cfg = {"targets": {"bins": 30}}  # 30 quantile bins per track parameter of whichever parameter set the data has
    if args.interpolate_points is not None:
        cfg["architecture"] = {"interpolate_points": args.interpolate_points}
    res = train("unet", data / "train", out / "unet", val=data / "val", config=cfg, max_minutes=args.minutes,
                epochs=args.epochs, seed=0, threads=args.threads)
    print(f"unet training: {res.status}, {res.epochs_done} epochs, best {res.best_epoch}")
    summary = predict(out / "unet", data / "test", out / "unet_sub.csv", timing=out / "unet_timing.csv",
                      threads=args.threads)
    truth = EventStore(data / "test").hits()[["event_id", "hit_id", "particle_id", "weight"]]
    sub = pd.read_csv(out / "unet_sub.csv")
    print(f"| U-Net TrackML score / FitAccuracy | {trackml_score(truth, sub):.3f} / {fit_accuracy(truth, sub):.3f} |")
    print(f"| U-Net device / wall ms per event, median | {summary['device_ms_median']:.1f} / {summary['wall_ms_median']:.1f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="results/data/redvid-helical-10-50",
                   help="dataset root with train/val/test stores")
    p.add_argument("--minutes", type=float, default=20.0, help="training budget per model")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--events", type=int, default=50, help="test events to evaluate")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--models", default="encdec,unet")
    p.add_argument("--interpolate-points", type=int, default=None,
                   help="unet: training-only interpolated points per hit gap (default: the model's, 10 as in the paper)")
    p.add_argument("--evaluate-only", action="store_true",
                   help="encdec: evaluate the model already in OUT/encdec without training it further")
    p.add_argument("--out", default="/tmp/bench_encdec_unet")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    models = args.models.split(",")
    if "encdec" in models:
        _bench_encdec(args, out)
    if "unet" in models:
        _bench_unet(args, out)


if __name__ == "__main__":
    main()
