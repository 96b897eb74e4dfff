"""Contrastive locality tracker benchmark on full <mu> = 200 pixel events (hllhc-pixel), CPU.

    python benchmarks/bench_contrastive.py [--data results/data/hllhc-pixel] [--threads 2]
        [--train-minutes 2] [--repeats 3] [--model-dir DIR [--reselect]] [--config SECTION.yaml]
        [--untrained-control] [--skip-forward]

Printed tables:
 1. encoder forward of the model (default section unless --config) on the first test event: median ms of
    --repeats runs after one warm-up, peak RSS of a fresh subprocess (targets < 5 s, < 4 GB); the dense
    full-attention score matrix that the cluster restriction avoids is printed for scale;
 2. training budget: `trackpipe train --model contrastive` on the train split with the val split for
    threshold selection, for --train-minutes of wall clock (skipped with --model-dir);
 3. latency breakdown per event (seed 004 Table 1 components; medians over the test events) and the DM
    efficiency (pT > 0.9 GeV) of the trained model per region and vs pT and eta, via locality_study.
    --reselect: the model's track formation is selected again with this code and its default tracking
    section (+ --config) first, on a copy;
    --untrained-control: tables 2-3 again for the same config with untrained weights, through the same
    selection and track formation (the helix test of tracking.helix needs no learning): the difference
    is what the learned embedding adds.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

FORWARD_CHILD = r"""
import json, resource, statistics, sys, time
import torch
from trackpipe.device import set_threads
from trackpipe.io.store import EventStore
from trackpipe.models.attention import AttentionMask
from trackpipe.models.registry import build_model, resolve_config
from trackpipe.targets import fit_preprocessing
from trackpipe.train.data import load_tables
from trackpipe.train.locality import blocks_for_event, locality_settings
from trackpipe.locality.events import pixel_hits

args = json.loads(sys.argv[1])
set_threads(args["threads"])
store = EventStore(args["store"])
eid = store.event_ids[0]
ev = store.read_event(eid)
hits = pixel_hits(ev.hits)
cfg = resolve_config("contrastive", args["section"])
prep = fit_preprocessing(*load_tables(store, [eid]))
torch.manual_seed(0)
model = build_model(cfg, prep).eval()
blocks = blocks_for_event(eid, hits, locality_settings(cfg))
x = torch.from_numpy(prep.inputs(hits))[None]
valid = torch.ones(x.shape[:2], dtype=torch.bool)
batch = {"x": x, "valid": valid, "mask": AttentionMask(valid, extra={"blocks": blocks})}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
times = []
with torch.inference_mode():
    model(batch)
    for _ in range(args["repeats"]):
        t0 = time.perf_counter()
        model(batch)
        times.append(time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
n_params = sum(p.numel() for p in model.parameters())
print(json.dumps({"n_hits": len(hits), "n_clusters": blocks.n_clusters, "n_tokens": blocks.n_tokens,
                  "forward_ms": 1e3 * statistics.median(times), "peak_rss_gb": peak, "rss_before_gb": base,
                  "n_params": n_params, "attention_entries": float(sum(int(r) * int(L) ** 2 for L, r in
                  zip(blocks.bucket_length, blocks.bucket_rows)))}))
"""


def _run_child(code: str, payload: dict, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(payload)], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rate(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _tolerance(t) -> str:
    return "off" if t is None else f"{t[0]:.3g}, {t[1]:.3g}"


def _section(path):
    if not path:
        return {}
    from trackpipe.cli.train import read_config_file

    return read_config_file(path)


def _forward_table(data, section, args):
    fwd = _run_child(FORWARD_CHILD, {"store": str(data / "test"), "section": section, "threads": args.threads,
                                     "repeats": args.repeats}, args.threads)
    dense_gb = fwd["n_hits"] ** 2 * 4 / 2**30
    print(f"\n1. encoder forward, full event, CPU, {args.threads} threads ({fwd['n_params']} parameters)")
    print(f"   hits {fwd['n_hits']}, clusters {fwd['n_clusters']}, tokens {fwd['n_tokens']}, padded attention "
          f"entries per head {fwd['attention_entries']:.3g} (dense: {fwd['n_hits'] ** 2:.3g}, "
          f"{dense_gb:.1f} GB per head fp32)")
    print(f"   forward median {fwd['forward_ms']:.0f} ms over {args.repeats} runs (target < 5000 ms); "
          f"peak RSS {fwd['peak_rss_gb']:.2f} GB (target < 4 GB)")


def _copy_and_reselect(model_dir: Path, copy: Path, data: Path, threads: int, tracking: dict,
                       untrained: bool = False) -> Path:
    """A copy of the model directory (weights re-initialised with seed 0 when ``untrained``) whose track
    formation is selected again on the val split by this code with the ``tracking`` section
    (`train.reselect`)."""
    import shutil

    import torch

    from trackpipe.train.loop import CHECKPOINT
    from trackpipe.train.reselect import reselect

    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(model_dir, copy)
    if untrained:
        from trackpipe.predict import load_model
        from trackpipe.models.registry import build_model

        _, cfg, prep = load_model(copy, torch.device("cpu"))
        torch.manual_seed(0)
        fresh = build_model(cfg, prep).state_dict()
        ckpt = torch.load(copy / CHECKPOINT, map_location="cpu", weights_only=False)
        ckpt["model"], ckpt["best_model"] = fresh, fresh
        torch.save(ckpt, copy / CHECKPOINT)
    reselect(copy, data / "val", tracking=tracking, threads=threads)
    return copy


def _evaluate(model_dir: Path, data: Path, study_dir: Path, threads: int, label: str) -> None:
    print(f"\n--- {label}: {model_dir}")
    prep = json.loads((model_dir / "preprocessing.json").read_text())
    clustering = prep["clustering"]
    print(f"   track formation: {clustering.get('method')} k={clustering.get('k')} threshold={clustering.get('threshold')}"
          f" max hits per layer={clustering.get('max_hits_per_layer', 0)} helix tolerance (mm²)="
          f"{_tolerance(clustering.get('helix_tolerance'))}, chosen on {clustering.get('objective')} over "
          f"{clustering.get('selection_events')} validation event(s)")
    print("   helix tolerance    max/layer  threshold  DM eff (pT>0.9)  TrackML score  fake rate  selected particles")
    for r in clustering.get("grid", []):
        print(f"   {_tolerance(r.get('helix_tolerance')):17s}  {r.get('max_hits_per_layer', 0):9d}  {r['threshold']:9g}  "
              f"{_rate(r['dm_efficiency']):>15s}  {r['trackml_score']:13.3f}  {_rate(r['fake_rate']):>9s}  "
              f"{r['n_selected_particles']:18d}")

    from trackpipe.locality.latency import locality_study

    res = locality_study(data / "test", study_dir, {"algorithms": [], "model_dir": str(model_dir),
                                                          "latency_events": 3, "warmup": 1,
                                                          "threads": threads})
    print("\n3. latency per event (median over test events, CPU)")
    for k, v in res["latency"].items():
        print(f"   {k:22s} {v:9.0f} ms")
    eff = res["efficiency"]
    print("   DM efficiency (pT > 0.9 GeV):  " + ", ".join(
        f"{r} {m['dm_efficiency']:.3f} ({m['n_particles']} particles)" for r, m in eff["regions"].items()))
    for var in ("pt", "eta"):
        print(f"   vs {var}: " + ", ".join(f"[{b['lo']:g},{b['hi']:g}) {b['dm_efficiency']:.3f}/{b['n_particles']}"
                                          for b in eff[var]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "main" / "results" / "data" / "hllhc-pixel"),
                    help="dataset directory with train/val/test stores")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-minutes", type=float, default=2.0)
    ap.add_argument("--model-dir", help="use this trained contrastive model instead of training one")
    ap.add_argument("--config", help="contrastive model section (YAML/JSON); default: the registry defaults")
    ap.add_argument("--out", help="keep the model and study files here (default: a temporary directory)")
    ap.add_argument("--reselect", action="store_true",
                    help="with --model-dir: rerun the track-formation selection with this code (on a copy) first")
    ap.add_argument("--untrained-control", action="store_true",
                    help="also evaluate the same config with untrained (seed 0) weights through the same selection "
                         "and track formation: what the learned embedding adds")
    ap.add_argument("--skip-forward", action="store_true", help="skip table 1 (the forward timing)")
    args = ap.parse_args()
    if args.reselect and not args.model_dir:
        ap.error("--reselect re-selects a trained model: give it with --model-dir")
    data = Path(args.data)
    section = _section(args.config)

    if not args.skip_forward:
        _forward_table(data, section, args)

    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-contrastive-"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = Path(args.model_dir) if args.model_dir else work / "model"
    if not args.model_dir:
        from trackpipe.train.loop import train

        t0 = time.monotonic()
        result = train("contrastive", data / "train", model_dir, val=data / "val", config=section,
                       max_minutes=args.train_minutes, seed=0, threads=args.threads)
        hist = result.history
        print(f"\n2. training: {args.train_minutes:g} min budget -> {time.monotonic() - t0:.0f} s wall, status "
              f"{result.status}, {result.epochs_done} epochs done")
        if len(hist):
            print("   epoch  train_loss  val_loss  epoch_s")
            for _, r in hist.iterrows():
                print(f"   {int(r.epoch):5d}  {r.train_loss:10.4f}  {r.val_loss:8.4f}  {r.epoch_seconds:7.1f}")
    from trackpipe.models.registry import resolve_config

    tracking = resolve_config("contrastive", section)["tracking"]  # this code's defaults (+ --config)
    if args.reselect and args.model_dir:
        model_dir = _copy_and_reselect(model_dir, work / "reselected", data, args.threads, tracking)
    _evaluate(model_dir, data, work / "study", args.threads, "trained model")
    if args.untrained_control:
        control = _copy_and_reselect(model_dir, work / "untrained", data, args.threads, tracking, untrained=True)
        _evaluate(control, data, work / "study-untrained", args.threads, "control: the same config, untrained weights")
    print(f"\nfiles: {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
