"""`trackpipe predict`: tracks for every event of a store with a trained model directory."""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("--model", required=True, help="model directory written by 'trackpipe train'")
    p.add_argument("--data", required=True, help="event store to reconstruct")
    p.add_argument("--out", required=True, help="submission CSV (event_id, hit_id, track_id)")
    p.add_argument("--timing", help="per-event timing CSV (event_id, n_hits, device_ms, host_cpu_ms, wall_ms)")
    p.add_argument("--posteriors", help="parquet of softmax posteriors for a few hits (classifiers)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: OMP_NUM_THREADS)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--warmup", type=int, default=3, help="untimed forward passes before timing")


def run(args) -> int:
    from ..predict import predict

    s = predict(args.model, args.data, args.out, timing=args.timing, posteriors=args.posteriors,
                threads=args.threads, device=args.device, warmup=args.warmup)
    print(f"{s['n_events']} events: device {s['device_ms_median']:.2f} ms (p90 {s['device_ms_p90']:.2f}), "
          f"host CPU {s['host_cpu_ms_median']:.2f} ms (p90 {s['host_cpu_ms_p90']:.2f}) per event -> {args.out}")
    return 0
