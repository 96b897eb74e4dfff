"""Training recipes under one time budget: each variant trained by `trackpipe train` for the same
minutes on the same training split, predicted on the same test events and scored (issue 16's ablation).

    python benchmarks/bench_recipes.py --data DATASET_DIR --model enccla --minutes 20 \
        [--variant NAME=JSON_SECTION ...] [--threads 2] [--seed 0] [--out DIR]

DATASET_DIR holds train/val/test stores (`trackpipe simulate --dataset trackml-10-50 --events 250
--config '{"split": [200, 10, 40]}' --out DIR` gives 1 000 / 50 / 200 events). A variant is a model
config section (JSON) applied over the registry defaults; `default` (the registry's own recipe) is
always run first unless --no-default. Variants run one after another (never two at once: the budget
is wall-clock). Each row: headline metric (TrackML score, or FitAccuracy for REDVID), double-majority
efficiency, fake rate, epochs and optimiser steps done, training hits/s, and the validation accuracy
curve against training minutes (from history.csv). Results are appended to OUT/results.jsonl as they
exist, so a cut-off run keeps its finished rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def run_variant(name: str, section: dict, args, out: Path) -> dict:
    from trackpipe.evaluate import score_submission
    from trackpipe.predict import predict
    from trackpipe.train.loop import train

    data = Path(args.data)
    model_dir = out / name
    t0 = time.monotonic()
    res = train(args.model, data / "train", model_dir, val=data / "val", config=section, max_minutes=args.minutes,
                seed=args.seed, threads=args.threads)
    train_s = time.monotonic() - t0
    sub = out / f"{name}.submission.csv"
    test = data / "test"
    predict(model_dir, test, sub, threads=args.threads)
    metrics = score_submission(test, sub)
    hist = res.history
    curve = [(round(float(r.wall_minutes), 2), round(float(r.get("val_accuracy", float("nan"))), 4))
             for _, r in hist.iterrows()] if "wall_minutes" in hist else []
    return {"variant": name, "section": section, "status": res.status, "epochs": res.epochs_done,
            "train_seconds": round(train_s, 1), "headline": metrics["headline"],
            "score": metrics[metrics["headline"]], "dm_efficiency": metrics.get("dm_efficiency"),
            "fake_rate": metrics.get("fake_rate"), "n_test_events": metrics["n_events"],
            "train_hits_per_second": float(hist.train_hits_per_second.median()) if len(hist) else None,
            "val_accuracy_curve": curve}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="enccla")
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON")
    ap.add_argument("--no-default", action="store_true")
    ap.add_argument("--out", default="results/bench/recipes")
    args = ap.parse_args()
    variants = [] if args.no_default else [("default", {})]
    for v in args.variant:
        name, _, text = v.partition("=")
        variants.append((name, json.loads(text or "{}")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, section in variants:
        row = run_variant(name, section, args, out)
        rows.append(row)
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps({**row, "model": args.model, "minutes": args.minutes, "data": args.data,
                                "threads": args.threads}) + "\n")
        print(f"{name}: {row['headline']} {row['score']:.3f}, DM {row['dm_efficiency']}, {row['epochs']} epochs, "
              f"{row['train_hits_per_second']:.0f} hits/s", flush=True)
    print(f"\n{args.model}, {args.minutes:g} min per variant, {args.threads} threads, test events "
          f"{rows[0]['n_test_events'] if rows else 0}")
    print(f"{'variant':28s} {'score':>7s} {'DM eff':>7s} {'fake':>6s} {'epochs':>6s} {'hits/s':>8s}")
    for r in rows:
        dm = "" if r["dm_efficiency"] is None else f"{r['dm_efficiency']:.3f}"
        fake = "" if r["fake_rate"] is None else f"{r['fake_rate']:.3f}"
        print(f"{r['variant']:28s} {r['score']:7.3f} {dm:>7s} {fake:>6s} {r['epochs']:6d} "
              f"{r['train_hits_per_second']:8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
