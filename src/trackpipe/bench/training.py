"""Training throughput: hits per second of one full training step of the encoder families, and its FLOP rate.

A step is what ``train.loop.run_batches`` does per batch on the CPU: ``train.data.collate`` of a real batch
(numpy -> padded torch tensors), forward, the model's own loss, ``zero_grad``, backward, gradient clipping
and an AdamW step. The events are TrackML-like <mu> = 200 pixel events (``trackpipe.sim.trackml_like``,
volumes 7-9) reduced to 10-50 tracks with noise in proportion, as the ``trackml-10-50`` dataset is built;
each source event is reduced ``reductions`` times with different seeds, so a pool of hundreds of events needs
only a few simulated sources. The timed batch is the first one of the training loop's plan for the pool
(``train.data.batch_plan`` with the default bucketing), so it carries the padding a real batch carries. Models carry the registry's default architecture (d_model overridden, d_ff = 2 x
d_model as the default's ratio) and fresh weights; the preprocessing (input normalisation, the 5 401 class
bins) is fitted on the unreduced source events.

Achieved GFLOP/s: the analytic forward FLOPs of the batch's real hits (``flops.model_flops``: every encoder
and head of the model, attention over each event's own hits) times 3 (backward = 2 x forward) over the
median step time. Padding is not counted: it is work the step does but not work it needs. The fraction is
taken against a 1024² matmul timed once per round in the same rounds (``hardware.MatmulReference``).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError
from .flops import model_flops
from .hardware import MatmulReference
from .measure import summarise, time_call

log = logging.getLogger(__name__)

TRAINING_DEFAULTS = {
    "models": ["enccla", "encreg", "jm"],
    "d_models": [64, 128],
    "batch_events": [16, 64],
    "sources": 8,            # simulated source events
    # reduced events per source: a pool of 512 events, cut into batches by the training loop's bucketing,
    # pads about as little as a 1 000-event training set does (a pool of one batch would pad far more)
    "reductions": 64,
    "n_tracks": [10, 50],    # reduce.sample_particles range, as trackml-10-50
    "volumes": [7, 8, 9],
    "repeats": 5,            # timed steps per (model, d_model, batch), after `warmup` steps
    "warmup": 2,
    "seed": 11,
    "reference_n": 1024,     # matmul timed in the same rounds
}

TRAIN_COLUMNS = ("model", "d_model", "batch_events", "hits/step", "padded/step", "ms_median", "ms_p90", "hits/s",
                 "gflop/step", "gflops", "ref_gflops", "frac_peak")


def training_config(section: dict | None) -> dict:
    """``TRAINING_DEFAULTS`` overlaid with `section` (unknown keys and non-encoder models rejected)."""
    out = copy.deepcopy(TRAINING_DEFAULTS)
    for key, value in (section or {}).items():
        if key not in TRAINING_DEFAULTS:
            raise ConfigError(f"unknown key bench.training.{key}; allowed: {sorted(TRAINING_DEFAULTS)}")
        out[key] = value
    unknown = [m for m in out["models"] if m not in ("enccla", "encreg", "jm")]
    if unknown:
        raise ConfigError(f"bench.training: {unknown} are not encoder families (enccla, encreg, jm)")
    if int(out["repeats"]) < 1 or int(out["warmup"]) < 0:
        raise ConfigError("bench.training: repeats must be >= 1, warmup >= 0")
    if int(out["sources"]) * int(out["reductions"]) < max(out["batch_events"]):
        raise ConfigError(f"bench.training: sources x reductions ({int(out['sources']) * int(out['reductions'])}) "
                          f"is smaller than the largest batch ({max(out['batch_events'])} events)")
    return out


def _tables(events) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hits and particles of `events`, renumbered 0, 1, ... in order."""
    hits = [ev.hits.assign(event_id=i)[["event_id", "hit_id", "x", "y", "z", "particle_id", "weight"]]
            for i, ev in enumerate(events)]
    particles = [ev.particles.assign(event_id=i) for i, ev in enumerate(events)]
    return pd.concat(hits, ignore_index=True), pd.concat(particles, ignore_index=True)


def training_events(cfg: dict) -> tuple[list, list]:
    """(source events, reduced events): each source reduced `reductions` times with its own seed."""
    from ..reduce import sample_particles
    from ..sim.trackml_like import simulate_trackml
    from .scaling import _with_weights

    seed = int(cfg["seed"])
    sources = [_with_weights(ev) for ev in
               simulate_trackml({"volumes": list(cfg["volumes"])}, range(int(cfg["sources"])), seed)]
    reduced = [_with_weights(sample_particles(src, np.random.default_rng(np.random.SeedSequence([seed, i, r])),
                                              tuple(cfg["n_tracks"]), noise="proportional"))
               for i, src in enumerate(sources) for r in range(int(cfg["reductions"]))]
    return sources, reduced


def training_data(cfg: dict):
    """(EventArrays of the reduced events, Preprocessing). The preprocessing is fitted on the unreduced
    source events: their thousands of particles fill every class bin, so the head has the 5 401 classes
    of a model trained on a full dataset (a few reduced events would give fewer distinct bins)."""
    from ..targets import fit_preprocessing
    from ..train.data import EventArrays

    sources, reduced = training_events(cfg)
    prep = fit_preprocessing(*_tables(sources))
    hits, particles = _tables(reduced)
    return EventArrays.from_tables(hits, particles, prep), prep


def build_step(model, data, indices, *, lr: float = 1e-3, grad_clip: float = 1.0):
    """A callable running one training step on the events `indices` of `data` (collate included)."""
    from torch.profiler import record_function

    from ..train.data import collate

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()

    def step():
        # named regions for torch.profiler (benchmarks/bench_train_step.py --profile); free otherwise
        with record_function("step:collate"):
            batch = collate(data, indices)
        with record_function("step:forward"):
            out = model(batch)
        with record_function("step:loss"):
            loss, _ = model.loss(out, batch)
        with record_function("step:backward"):
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        with record_function("step:optimizer"):
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        return float(loss.detach())

    return step


def step_row(model_name: str, d_model: int, lengths, times_ms, ref_gflops: float, flops_forward: int) -> dict:
    """One table row from measured step times: hits/s = hits per step / median seconds; GFLOP/s of
    forward + backward (3 x forward FLOPs) over the median; fraction of the matmul rate `ref_gflops`."""
    lengths = np.asarray(lengths, np.int64)
    t = summarise(times_ms)
    hits = int(lengths.sum())
    flops = 3 * int(flops_forward)
    seconds = t["median"] * 1e-3
    gflops = flops / seconds / 1e9
    return {"model": model_name, "d_model": int(d_model), "batch_events": int(len(lengths)), "hits/step": hits,
            "padded/step": int(len(lengths) * lengths.max()), "ms_median": t["median"], "ms_p90": t["p90"],
            "hits/s": hits / seconds, "gflop/step": flops / 1e9, "gflops": gflops, "ref_gflops": float(ref_gflops),
            "frac_peak": gflops / ref_gflops if ref_gflops > 0 else float("nan")}


def _batches(data, sizes: list[int], seed: int) -> dict[int, np.ndarray]:
    """One batch per size as the training loop cuts them (``train.data.batch_plan`` with the registry's
    default bucketing: events of similar size together); its first batch, the same for every model."""
    from ..models.registry import TRAINING
    from ..train.data import batch_plan

    return {int(b): np.sort(batch_plan(data.lengths, int(b), seed=seed, epoch=0, bucket=TRAINING["bucket"])[0])
            for b in sizes}


def run_training_bench(cfg: dict, *, on_row=None) -> list[dict]:
    """Rows of ``TRAIN_COLUMNS`` for every (model, d_model, batch size) of `cfg` (see the module doc)."""
    from ..models.registry import build_model, resolve_config
    from ..progress import progress

    data, prep = training_data(cfg)
    batches = _batches(data, cfg["batch_events"], int(cfg["seed"]))
    reference = MatmulReference(int(cfg["reference_n"]), seed=int(cfg["seed"]))
    reference()
    cases = [(m, d, b) for m in cfg["models"] for d in cfg["d_models"] for b in cfg["batch_events"]]
    rows = []
    for name, d, b in progress(cases, desc="training step", unit="case"):
        torch.manual_seed(int(cfg["seed"]))
        config = resolve_config(name, {"architecture": {"d_model": int(d), "d_ff": 2 * int(d)}})
        model = build_model(config, prep)
        indices = batches[int(b)]
        lengths = data.lengths[indices]
        step = build_step(model, data, indices, lr=config["training"]["lr"], grad_clip=config["training"]["grad_clip"])
        for _ in range(int(cfg["warmup"])):
            step()
        reference.times, times = [], []
        for _ in range(int(cfg["repeats"])):  # the reference matmul between steps: same load, same rounds
            reference.time_once()
            times.extend(time_call(step, repeats=1, warmup=0))
        flops = sum(model_flops(model, int(n)) for n in lengths)
        row = step_row(name, d, lengths, times, reference.gflops(), flops)
        log.info("training step %s d=%d batch=%d: %.0f ms, %.0f hits/s, %.0f%% of matmul", name, d, b,
                 row["ms_median"], row["hits/s"], 100 * row["frac_peak"])
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def format_training_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    df = pd.DataFrame(rows, columns=TRAIN_COLUMNS)
    fmt = {"ms_median": "{:.0f}", "ms_p90": "{:.0f}", "hits/s": "{:.0f}", "gflop/step": "{:.2f}",
           "gflops": "{:.1f}", "ref_gflops": "{:.1f}", "frac_peak": "{:.0%}"}
    shown = df.astype(object)
    for col, f in fmt.items():
        shown[col] = [f.format(v) for v in df[col]]
    return shown.to_string(index=False)
