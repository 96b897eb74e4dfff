"""Training throughput of the encoder families and where a step's time goes (issue 16 item 3).

Times `trackpipe.bench.training` steps (collate + forward + loss + backward + AdamW on TrackML-like
10-50-track events, the training loop's bucketed batches) and prints the training-step table of
`trackpipe bench`; with ``--profile`` also one torch.profiler breakdown per case (self CPU time of 3 steps
after the timed ones), by step phase and by kind of work:

* output layer + CE -- every op on a tensor with a classes-sized dimension (the 5 401-way projection, the
  cross-entropy, their backward; for the fused loss the whole chunked kernel)
* attention         -- scaled_dot_product_attention forward and backward
* dropout masks     -- bernoulli_ (drawing the dropout masks)
* other matmuls     -- the encoder's linear layers (mm / addmm / bmm) and their backward
* rest              -- layer norm, activations, residual adds, copies, optimizer, Python

``--paired`` times, per case, the step as it was before the fused loss (the head projects every padded hit,
the loss indexes the real ones and takes F.cross_entropy: `plain_logits_head`) and the current step in
alternation, with the matmul reference in the same rounds, so that the two see the same machine load.

Or run at two commits to compare, e.g.
``OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_train_step.py --models enccla --profile``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def _kind(event, n_classes: int) -> str:
    name = event.key
    if name.startswith("step:"):
        return "phase"
    shapes = [s for s in (event.input_shapes or []) if isinstance(s, (list, tuple))]
    if name == "_LinearCrossEntropy" or any(n_classes in s for s in shapes):
        return "output layer + CE"
    if "scaled_dot_product" in name:
        return "attention"
    if name == "aten::bernoulli_":
        return "dropout masks"
    if name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::addmm_"):
        return "other matmuls"
    return "rest"


def profile_step(step, n_classes: int, steps: int = 3) -> dict:
    """ms per step by phase (inclusive) and by kind of work (self time)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            step()
    phases, kinds = {}, {}
    for e in prof.key_averages(group_by_input_shape=True):
        kind = _kind(e, n_classes)
        if kind == "phase":
            phases[e.key[5:]] = phases.get(e.key[5:], 0.0) + e.cpu_time_total / 1e3 / steps
        else:  # self times: they add up to the profiled total
            kinds[kind] = kinds.get(kind, 0.0) + e.self_cpu_time_total / 1e3 / steps
    return {"phases_ms": phases, "kinds_ms": kinds}


def plain_logits_head(model):
    """Make the model's classification heads return full padded logits in training too (the loss then takes
    its logits branch): the computation of the head before the fused loss, for a paired comparison."""
    from trackpipe.models.heads import ClassificationHead

    for m in model.modules():
        if isinstance(m, ClassificationHead):
            m.forward = lambda h, proj=m.proj: {"logits": proj(h)}
    return model


def paired(cfg, repeats: int) -> list[dict]:
    """Rows {model, d_model, batch_events, hits, ms_plain, ms_fused, ref_gflops, frac_plain, frac_fused,
    speedup}: medians over `repeats` rounds of (matmul, plain step, fused step) after one warm-up each."""
    import copy

    from trackpipe.bench.flops import model_flops
    from trackpipe.bench.hardware import MatmulReference
    from trackpipe.bench.measure import summarise, time_call
    from trackpipe.bench.training import _batches, build_step, training_data
    from trackpipe.models.registry import build_model, resolve_config

    data, prep = training_data(cfg)
    batches = _batches(data, cfg["batch_events"], int(cfg["seed"]))
    reference = MatmulReference(int(cfg["reference_n"]))
    rows = []
    for name in cfg["models"]:
        for d in cfg["d_models"]:
            for b in cfg["batch_events"]:
                torch.manual_seed(int(cfg["seed"]))
                model = build_model(resolve_config(name, {"architecture": {"d_model": d, "d_ff": 2 * d}}), prep)
                plain = build_step(plain_logits_head(copy.deepcopy(model)), data, batches[b])
                fused = build_step(model, data, batches[b])
                plain(), fused()
                reference.times, t_plain, t_fused = [], [], []
                for _ in range(repeats):
                    reference.time_once()
                    t_plain += time_call(plain, repeats=1, warmup=0)
                    t_fused += time_call(fused, repeats=1, warmup=0)
                lengths = data.lengths[batches[b]]
                flops = 3 * sum(model_flops(model, int(n)) for n in lengths)
                ref = reference.gflops()
                mp, mf = summarise(t_plain)["median"], summarise(t_fused)["median"]
                rows.append({"model": name, "d_model": d, "batch_events": b, "hits": int(lengths.sum()),
                             "ms_plain": mp, "ms_fused": mf, "ref_gflops": ref,
                             "frac_plain": flops / (mp * 1e-3) / 1e9 / ref, "frac_fused": flops / (mf * 1e-3) / 1e9 / ref,
                             "speedup": mp / mf})
                print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()),
                      flush=True)
    return rows


def main() -> None:
    from trackpipe.bench.training import (_batches, build_step, format_training_table, run_training_bench,
                                          training_config, training_data)
    from trackpipe.models.registry import build_model, resolve_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="enccla,encreg,jm")
    p.add_argument("--d-models", default="64,128")
    p.add_argument("--batch", default="16,64", help="events per batch")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS or torch's)")
    p.add_argument("--profile", action="store_true", help="also print the torch.profiler breakdown per case")
    p.add_argument("--json", action="store_true", help="print the rows as JSON lines")
    p.add_argument("--paired", action="store_true",
                   help="only the paired comparison of the plain-logits head and the fused loss")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = training_config({"models": args.models.split(","), "d_models": [int(d) for d in args.d_models.split(",")],
                           "batch_events": [int(b) for b in args.batch.split(",")], "repeats": args.repeats,
                           "warmup": 1})
    t0 = time.perf_counter()
    if args.paired:
        print(f"threads {torch.get_num_threads()}")
        paired(cfg, args.repeats)
        return
    rows = run_training_bench(cfg)
    print(f"threads {torch.get_num_threads()}, {time.perf_counter() - t0:.0f} s")
    print("\n".join(json.dumps(r) for r in rows) if args.json else format_training_table(rows))
    if not args.profile:
        return
    data, prep = training_data(cfg)
    batches = _batches(data, cfg["batch_events"], int(cfg["seed"]))
    for name in cfg["models"]:
        for d in cfg["d_models"]:
            for b in cfg["batch_events"]:
                torch.manual_seed(int(cfg["seed"]))
                model = build_model(resolve_config(name, {"architecture": {"d_model": d, "d_ff": 2 * d}}), prep)
                step = build_step(model, data, batches[b])
                step()
                prof = profile_step(step, prep.n_classes)
                total = sum(prof["kinds_ms"].values())
                kinds = ", ".join(f"{k} {v:.0f} ({v / total:.0%})" for k, v in
                                  sorted(prof["kinds_ms"].items(), key=lambda kv: -kv[1]))
                phases = ", ".join(f"{k} {v:.0f}" for k, v in prof["phases_ms"].items())
                print(f"{name} d={d} batch={b}: {total:.0f} ms/step under the profiler; by kind: {kinds}; "
                      f"by phase: {phases}")


if __name__ == "__main__":
    main()
