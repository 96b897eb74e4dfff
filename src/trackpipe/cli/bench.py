"""`trackpipe bench`: scaling study + hardware reference in one run, printed as one table.

Writes ``<out>/scaling.csv`` (model, n_tracks, n_hits, ms_median, ms_p90, peak_mb; CPU rows, read by the
report) and ``<out>/bench.json`` (machine, matmul rate, every row incl. GPU ones, fitted exponents, width
sweep, training-step rows). Encoders use freshly initialised weights (timing only). ``--quick`` (10/100/1000
tracks + full events, 2 events, small sweep, training step at batch 16 only) is sized to finish in about two
minutes on two shared cores.

The second table, "training step" (``bench.training``), times one full training step of EncCla, EncReg and
JM (collate, forward, loss, backward, AdamW) on TrackML-like 10-50-track events and reports hits/s and the
achieved GFLOP/s of forward + backward as a fraction of a matmul timed in the same rounds.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

QUICK = {"n_tracks": [10, 100, 1000], "events": 2, "repeats": 2,
         "max_hits": {"helix-dbscan": 6000, "enccla": 1000, "encreg": 1000, "encoder-dense": 6000}}
# blocked_max_hits: the blocked sweep uses the largest event set at or below it (the full events in a full run)
SWEEP = {"quick": {"n_hits": 2048, "d_models": (64, 256), "repeats": 2, "blocked_max_hits": 6000},
         "full": {"n_hits": 4096, "d_models": (64, 128, 256, 512), "repeats": 3, "blocked_max_hits": None}}
MATMUL_SIZES = {"quick": (512, 1024), "full": (512, 1024, 2048)}
# bench.training settings per mode (over bench.training.TRAINING_DEFAULTS); quick adds well under 30 s
TRAINING = {"quick": {"batch_events": [16], "sources": 2, "reductions": 32, "repeats": 3, "warmup": 1},
            "full": {}}


def add_arguments(p) -> None:
    p.add_argument("--quick", action="store_true", help="small study (about two minutes)")
    p.add_argument("--models", default=None,
                   help="comma-separated: helix-dbscan, enccla, encreg, encoder-dense, encoder-blocked, locality, jm "
                        "(enccla, encreg and jm also select the training-step rows; jm has training rows only)")
    p.add_argument("--max-tracks", type=int, default=None,
                   help="largest reduced track count; full events (~10 000 tracks) only if N >= their track count")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds over the events per size")
    p.add_argument("--events", type=int, default=None, help="source events per size")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS)")
    p.add_argument("--no-sweep", action="store_true", help="skip the d_model sweep")
    p.add_argument("--no-training", action="store_true", help="skip the training-step table")
    p.add_argument("--config", help="YAML/JSON file with the bench.scaling section (bench.scaling.SCALING_DEFAULTS); "
                   "--quick and the options above override it")
    p.add_argument("--out", default="results/bench", help="output directory (default results/bench)")
    p.add_argument("--json", action="store_true", help="print bench.json instead of the table")


def _machine(threads: int) -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def _config(args) -> dict:
    from ..bench.scaling import scaling_config

    from .train import read_config_file

    section = read_config_file(args.config) if args.config else {}
    if args.quick:
        section = {**section, **QUICK}
    if args.models:
        section["models"] = [m for m in _model_names(args) if m not in TRAINING_ONLY]
    if args.repeats is not None:
        section["repeats"] = args.repeats
    if args.events is not None:
        section["events"] = args.events
    cfg = scaling_config(section)
    if args.max_tracks is not None:
        cfg["n_tracks"] = [n for n in cfg["n_tracks"] if n <= args.max_tracks]
        cfg["max_tracks"] = args.max_tracks
    return cfg


TRAINING_ONLY = ("jm",)  # models with a training-step row but no inference runner


def _model_names(args) -> list[str]:
    return [m.strip() for m in args.models.split(",") if m.strip()]


def _training_config(args, mode: str) -> dict | None:
    """The bench.training settings of this run, or None when no training row is wanted: --no-training, or
    --models naming none of the encoder families."""
    from ..bench.training import TRAINING_DEFAULTS, training_config

    if args.no_training:
        return None
    section = dict(TRAINING[mode])
    if args.models:
        section["models"] = [m for m in _model_names(args) if m in TRAINING_DEFAULTS["models"]]
        if not section["models"]:
            return None
    return training_config(section)


def _summary_lines(doc: dict) -> list[str]:
    peak = doc["matmul"]["peak_gflops"]
    lines = [f"matmul {doc['matmul']['dtype']} on {doc['matmul']['device']}, {doc['matmul']['threads']} thread(s): "
             f"{peak:.1f} GFLOP/s (best median over n = {[r['n'] for r in doc['matmul']['sizes']]})"]
    for e in doc["exponents"].values():
        lo, hi = e["hits_range"]
        win = "" if math.isnan(e["k_window"]) else f", k = {e['k_window']:.2f} over 5k-60k hits ({e['window_points']} sizes)"
        lines.append(f"power law {e['model']} ({e['device']}): t ~ N^{e['k_all']:.2f} over {lo:.0f}-{hi:.0f} hits{win}")
    for r in doc.get("sweep", []):
        lines.append(f"width sweep {r['attention']} d_model={r['d_model']} N={r['n_hits']}: {r['ms_median']:.1f} ms, "
                     f"{r['gflops']:.1f} GFLOP/s = {r['frac_peak']:.0%} of matmul timed alongside ({r['ref_gflops']:.1f})")
    if doc.get("training"):
        lines.append("training step: hits/s of collate + forward + loss + backward + AdamW; gflops = 3 x forward "
                     "FLOPs of the real hits / median step; frac_peak against a 1024^2 matmul timed between the steps")
    return lines


def _finite(obj):
    """NaN/inf -> None, recursively, so bench.json is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def run(args) -> int:
    import torch

    from ..bench.hardware import matmul_rate
    from ..bench.scaling import exponents, locality_blocks, run_scaling, scaling_events, scaling_table
    from ..bench.sweep import width_sweep
    from ..bench.table import bench_table, format_table
    from ..bench.training import format_training_table, run_training_bench
    from ..device import set_threads
    from ..io.atomic import write_csv, write_json

    t_start = time.perf_counter()
    threads = set_threads(args.threads)
    mode = "quick" if args.quick else "full"
    cfg = _config(args)
    training_cfg = _training_config(args, mode)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    points = scaling_events(cfg)
    if "max_tracks" in cfg:
        points = [p for p in points if p.n_tracks <= cfg["max_tracks"]]
    matmul = matmul_rate(MATMUL_SIZES[mode])
    rows = run_scaling(cfg, points)
    sweep = []
    if not args.no_sweep:
        s = SWEEP[mode]
        fits = [p for p in points if s["blocked_max_hits"] is None or p.n_hits <= s["blocked_max_hits"]]
        blocks = locality_blocks(fits[-1].events[0], cfg["locality"]) if fits else None
        sweep = width_sweep(s["n_hits"], s["d_models"], repeats=s["repeats"], blocks=blocks)
    training = [] if training_cfg is None else run_training_bench(training_cfg)
    gpu_matmul = matmul_rate(MATMUL_SIZES[mode], device="cuda") if torch.cuda.is_available() else None
    table = bench_table(rows, matmul["peak_gflops"])
    doc = {"machine": _machine(threads), "mode": mode, "config": cfg, "matmul": matmul, "gpu_matmul": gpu_matmul,
           "rows": rows, "exponents": exponents(rows, cfg["fit_window"]), "sweep": sweep,
           "training": training, "training_config": training_cfg,
           "table": json.loads(table.to_json(orient="records")),
           "notes": ["encoders carry freshly initialised weights (timing only; no score)",
                     "CPU peak_mb: peak RSS growth during one call, sampled every 2 ms",
                     "gflops: analytic encoder FLOPs / median time, only where the timed call is the forward",
                     "frac_peak: gflops / a 1024^2 matmul timed once per round in the same rounds (ref_gflops)",
                     "CPU peak_mb is measured on the first warm-up call",
                     "training: one CPU training step (collate, forward, loss, backward, clip, AdamW) per timed call; "
                     "gflops = 3 x analytic forward FLOPs of the real hits / median; frac_peak against a matmul "
                     "timed between the steps (ref_gflops)"],
           "seconds": None}
    doc["seconds"] = time.perf_counter() - t_start
    write_csv(out / "scaling.csv", scaling_table(rows))
    write_json(out / "bench.json", _finite(doc))
    if args.json:
        json.dump(_finite(doc), sys.stdout, indent=1, default=str)
        print()
        return 0
    print(format_table(table))
    print()
    if training:
        print(f"training step ({threads} thread(s)):")
        print(format_training_table(training))
        print()
    print("\n".join(_summary_lines(doc)))
    print(f"\nwrote {out / 'scaling.csv'} and {out / 'bench.json'} in {doc['seconds']:.0f} s")
    return 0
