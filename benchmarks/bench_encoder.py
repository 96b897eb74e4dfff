"""Encoder benchmark: FitAccuracy after a CPU training budget, inference latency, throughput, memory.

    python benchmarks/bench_encoder.py [--minutes 20] [--threads 2] [--models enccla,encreg,encreg-fa,jm]

Data: REDVID linear tracks, 10-50 per event, from the origin through 9 barrel shells (trackpipe.sim.redvid
with the small barrel of DATA; the numbers in benchmarks/README.md were measured with the former
train.toydata generator of the same geometry, which smeared x, y, z and drew cot(theta) instead of eta
flat). FitAccuracy = the TrackML score with unit weights per track
hit (trackpipe.metrics), averaged over test
events. Each model trains in its own process (so its peak RSS is its own), EncCla and EncReg side by side with
one thread each (2 cores in all), for at most --minutes of wall clock; the epoch count is fitted to the
budget from a one-minute pilot so the cosine schedule ends in time. Inference is timed afterwards, one
model at a time, at 1 thread, batch size 1, after warm-up.

Targets (issue 5): EncCla and EncReg FitAccuracy >= 90 % within 20 minutes on 2 cores; EncCla median
inference < 20 ms per event at 1 thread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trackpipe.io.store import EventStore, write_store  # noqa: E402
from trackpipe.io.submission import read_submission  # noqa: E402
from trackpipe.metrics.score import trackml_score_of_labels as trackml_score  # noqa: E402
from trackpipe.sim.redvid import simulate_redvid  # noqa: E402

# The configuration measured (also printed with the table).
BASE = {
    "architecture": {"d_model": 64, "n_heads": 4, "d_ff": 128, "n_layers": 6, "dropout": 0.0},
    "targets": {"inputs": ["x", "y", "z"]},
    "training": {"batch_size": 16, "lr": 2e-3, "warmup_epochs": 0.5, "early_stopping": 0},
}
PER_MODEL = {"jm": {"joint": {"reg_layers": 3, "cla_layers": 3}}}
QUALITY = ("enccla", "encreg")
# REDVID linear, 10-50 tracks on nine barrel shells (r = 10..90 mm, |z| <= 100 mm, no disks), |eta| <= asinh(1)
# so every track crosses all nine shells, 0.05 mm smearing across and along the shells.
DATA = {"detector": {"barrel": {"radii": [10.0 * i for i in range(1, 10)], "half_length": 100.0},
                     "short_strip": {"present": False}, "long_strip": {"present": False}},
        "track_types": ["linear"], "n_tracks": [10, 50], "eta": [-0.8813, 0.8813], "smear_rphi": 0.05,
        "smear_long": 0.05}


def run(cmd, threads):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "trackpipe", *map(str, cmd)], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{proc.stderr[-3000:]}")
    return time.monotonic() - t0


def fit_accuracy(store: Path, submission: Path) -> float:
    hits = EventStore(store).hits(columns=["event_id", "hit_id", "particle_id", "weight"])
    sub = read_submission(submission)
    m = hits.merge(sub, on=["event_id", "hit_id"], how="left", validate="one_to_one")
    return float(np.mean([trackml_score(g.particle_id.to_numpy(), g.weight.to_numpy(), g.track_id.to_numpy())
                          for _, g in m.groupby("event_id")]))


def pilot_hits_per_second(name, work, stores, threads) -> float:
    """Training throughput from a one-minute run (its checkpoint holds the partial epoch's counts)."""
    import torch

    out = work / f"{name}-pilot"
    run(train_args(name, work, stores, threads) + ["--epochs", 1000, "--max-minutes", 1.0, "--out", out], threads)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    return ckpt["epoch_stats"]["hits"] / ckpt["epoch_seconds"]


def train_args(name, work, stores, threads):
    cfg_path = work / f"{name}.json"
    cfg_path.write_text(json.dumps({**BASE, **PER_MODEL.get(name, {})}))
    return ["train", "--data", stores["train"], "--val", stores["val"], "--model", name, "--config", cfg_path,
            "--threads", threads, "--seed", 0]


def train_model(name, work, stores, minutes, threads, train_hits, epochs=None) -> dict:
    if epochs is None:
        rate = pilot_hits_per_second(name, work, stores, threads)
        # Size the cosine schedule to end inside the budget (10 % margin for validation and checkpoints).
        epochs = max(1, int(minutes * 60 * 0.9 * rate / train_hits))
    out = work / name
    train_s = run(train_args(name, work, stores, threads) + ["--epochs", epochs, "--max-minutes", minutes,
                                                            "--out", out], threads)
    return {"model": name, "train_min": round(train_s / 60, 1), "planned_epochs": epochs}


def evaluate_model(row, work, stores) -> dict:
    import torch

    name = row["model"]
    out = work / name
    hist = pd.read_csv(out / "history.csv")
    sub, timing = work / f"{name}.csv", work / f"{name}-timing.csv"
    run(["predict", "--model", out, "--data", stores["test"], "--out", sub, "--timing", timing, "--threads", 1,
         "--warmup", 5], 1)
    t = pd.read_csv(timing)
    n_params = sum(v.numel() for v in torch.load(out / "checkpoint.pt", weights_only=False)["model"].values())
    return {
        **row, "params": n_params, "epochs": len(hist),
        "train_hits_per_s": round(float(hist.train_hits_per_second.median())),
        "peak_rss_mb": round(float(hist.peak_memory_mb.max())),
        "val_accuracy": round(float(hist.val_accuracy.iloc[-1]), 3) if "val_accuracy" in hist else None,
        "val_reg_mse": float(f"{hist.val_reg_mse.iloc[-1]:.3g}") if "val_reg_mse" in hist else None,
        "fit_accuracy": round(fit_accuracy(stores["test"], sub), 4),
        "device_ms_median": round(float(t.device_ms.median()), 2),
        "device_ms_p90": round(float(t.device_ms.quantile(0.9)), 2),
        "host_cpu_ms_median": round(float(t.host_cpu_ms.median()), 2),
        "wall_ms_median": round(float(t.wall_ms.median()), 2),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget per model (quality models)")
    ap.add_argument("--other-minutes", type=float, default=3.0, help="budget for encreg-fa and jm (throughput only)")
    ap.add_argument("--threads", type=int, default=1, help="threads per training process (two train at once)")
    ap.add_argument("--models", default="enccla,encreg,encreg-fa,jm")
    ap.add_argument("--train-events", type=int, default=2000)
    ap.add_argument("--test-events", type=int, default=200)
    ap.add_argument("--epochs", type=int, help="fixed epoch count (still cut by --minutes) instead of the pilot's")
    ap.add_argument("--inputs", default="x,y,z", help="per-hit input features (x,y,z or r,phi,z)")
    ap.add_argument("--work", help="keep data and models here (default: a temporary directory)")
    args = ap.parse_args(argv)
    BASE["targets"]["inputs"] = args.inputs.split(",")
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_encoder."))
    work.mkdir(parents=True, exist_ok=True)
    stores = {"train": work / "train", "val": work / "val", "test": work / "test"}
    for split, (n, seed, first) in {"train": (args.train_events, 1, 0), "val": (200, 2, 10**6),
                                    "test": (args.test_events, 3, 2 * 10**6)}.items():
        if not stores[split].exists():
            write_store(stores[split], simulate_redvid(DATA, range(first, first + n), seed))
    from concurrent.futures import ThreadPoolExecutor

    train_hits = int(EventStore(stores["train"]).index.n_hits.sum())
    names = args.models.split(",")
    groups = [[n for n in names if n in QUALITY], [n for n in names if n not in QUALITY]]
    trained = []
    # Models of a group train side by side, one core each (the 2-core budget); inference runs alone.
    for group in groups:
        with ThreadPoolExecutor(len(group) or 1) as pool:
            minutes = lambda n: args.minutes if n in QUALITY else args.other_minutes  # noqa: E731
            trained += list(pool.map(lambda n: train_model(n, work, stores, minutes(n), args.threads, train_hits,
                                                             args.epochs),
                                     group))
    rows = []
    for row in trained:
        rows.append(evaluate_model(row, work, stores))
        print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    print(f"\nREDVID-like linear 10-50 tracks, {args.train_events} training events, {args.threads} thread(s) per "
          "training process (enccla + encreg side by side, then encreg-fa + jm), "
          f"inference 1 thread; data {DATA}; config {json.dumps(BASE)}")
    print(table.to_string(index=False))
    print("targets: fit_accuracy >= 0.90 (enccla, encreg); enccla device_ms_median < 20")
    return 0


if __name__ == "__main__":
    sys.exit(main())
