"""`trackpipe predict`: tracks for every event of a store with a trained model directory, or with a
classical tracker named by its family (`pipeline.CLASSICAL`, e.g. helix-dbscan: no training), the same
call as the workflow's predict step. Stores without truth are predicted like any other."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import ConfigError
from .options import json_object


def add_arguments(p):
    p.add_argument("--model", required=True,
                   help="model directory written by 'trackpipe train', or a classical tracker: helix-dbscan")
    p.add_argument("--data", required=True, help="event store to reconstruct")
    p.add_argument("--out", required=True, help="submission CSV (event_id, hit_id, track_id)")
    p.add_argument("--timing", help="per-event timing CSV (event_id, n_hits, device_ms, host_cpu_ms, wall_ms)")
    p.add_argument("--posteriors", help="parquet of softmax posteriors for a few hits (classifiers)")
    p.add_argument("--params", help="classical tracker only: its parameters as JSON, inline or a file "
                   "(helix-dbscan: tracking.helix_dbscan.DEFAULTS keys)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: OMP_NUM_THREADS)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--warmup", type=int, default=3, help="untimed forward passes before timing")


def classical_params(family: str, text: str | None) -> dict:
    """--params of a classical tracker: a JSON object (inline or a file) with known keys only."""
    from ..tracking.helix_dbscan import DEFAULTS

    params = json_object(text, "--params")
    known = {"helix-dbscan": DEFAULTS}[family]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(f"unknown {family} parameter(s) {unknown}; allowed: {sorted(known)}")
    return params


def run(args) -> int:
    from ..pipeline import CLASSICAL, predict_for_workflow

    if args.model in CLASSICAL:
        if args.posteriors:
            raise ConfigError(f"posteriors need a classifier; {args.model} is a classical tracker")
        section = {"family": args.model, "params": classical_params(args.model, args.params)}
        # The summary line comes from the timing table, so a run without --timing times into a scratch file.
        with tempfile.TemporaryDirectory(prefix="trackpipe-predict-") as scratch:
            timing = args.timing or Path(scratch) / "timing.csv"
            s = predict_for_workflow(section=section, model_dir=None, data=args.data, out=args.out, timing=timing)
    else:
        if args.params:
            raise ConfigError("--params is for classical trackers; a trained model reads its model directory")
        from ..predict import predict

        s = predict(args.model, args.data, args.out, timing=args.timing, posteriors=args.posteriors,
                    threads=args.threads, device=args.device, warmup=args.warmup)
    # A classical tracker has no network, hence no device (GPU side) time: all of its work is host CPU.
    device = ("no device (GPU side) time" if s["device_ms_median"] is None
              else f"device {s['device_ms_median']:.2f} ms (p90 {s['device_ms_p90']:.2f})")
    print(f"{s['n_events']} events: {device}, "
          f"host CPU {s['host_cpu_ms_median']:.2f} ms (p90 {s['host_cpu_ms_p90']:.2f}) per event -> {args.out}")
    return 0
