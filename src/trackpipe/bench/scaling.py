"""Scaling study: inference time per event against event size, per model.

Events: TrackML-like <mu> = 200 pixel events (``trackpipe.sim.trackml_like``, volumes 7-9), each reduced to
10 ... 8 000 tracks with ``trackpipe.reduce.sample_particles`` (noise kept in proportion to the sampled
tracks, as the reduced datasets do), plus the full events. The same source events are used for every size.

Models (``RUNNERS``); the encoders carry **freshly initialised weights** (the default architecture of
``trackpipe.models.registry``): timing does not depend on the weights, scores would, so no score is given.

* ``helix-dbscan``   the classical baseline (``trackpipe.tracking.helix_dbscan``), with a TrackML score.
* ``enccla``         dense encoder + classification head + argmax tracks.
* ``encreg``         dense encoder + regression head + HDBSCAN tracks.
* ``encoder-dense``  the encoder forward alone, dense attention (sdpa).
* ``encoder-blocked`` the same encoder, attention restricted to locality clusters (block tables prebuilt).
* ``locality``       the locality tracker's inference: projection + clustering + block tables + blocked forward.

Timed: everything from the event's input tensor (encoders) or coordinate arrays (baseline) to track ids
(or embeddings for the bare forwards); reading the event and building the input tensor are not timed.
Per (model, size): one warm-up call (which also gives the peak memory), then ``repeats`` rounds over ``events`` events; median and p90 over all
those calls; peak memory of one call. Sizes whose mean hit count exceeds the model's ``max_hits`` are skipped
(dense attention at 60 000 hits takes minutes per call on one core). Power laws ``t = a·N^k`` are fitted
per model over all sizes and over the 5 000-60 000-hit window.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError
from ..plots.scaling import SCALING_COLUMNS, fit_power_law
from .flops import encoder_arch, encoder_flops
from .measure import peak_memory_mb, summarise, time_call

log = logging.getLogger(__name__)

ENCODERS = ("enccla", "encreg", "encoder-dense", "encoder-blocked", "locality")
SCALING_DEFAULTS = {
    "n_tracks": [10, 30, 100, 300, 1000, 3000, 8000],
    "full_events": True,            # also time the unreduced <mu> = 200 pixel events
    "events": 3,                    # source events (each reduced to every size)
    "repeats": 3,                   # timed rounds over the events, after `warmup` calls
    "warmup": 1,
    "seed": 7,
    "volumes": [7, 8, 9],
    "noise": "proportional",        # reduce.sample_particles noise mode
    "models": ["helix-dbscan", "enccla", "encreg", "encoder-dense", "encoder-blocked", "locality"],
    # Mean hits per event above which a model is skipped; null = no limit.
    "max_hits": {"helix-dbscan": None, "enccla": 6000, "encreg": 6000, "encoder-dense": 20000},
    "architecture": {},             # overrides of models.registry.ARCHITECTURE for every encoder
    "locality": {"algorithm": "iterative_window", "params": None, "projection": None, "blocks": None},
    "helix_dbscan": {"unrolling": "helix"},
    "gpu": "auto",                  # auto: also time the encoders with CUDA events when CUDA is present
    "fit_window": [5000, 60000],    # hits range of the second power-law fit
}


def scaling_config(section: dict | None) -> dict:
    """The complete ``bench.scaling`` section: `section` over ``SCALING_DEFAULTS`` (unknown keys rejected)."""
    out = copy.deepcopy(SCALING_DEFAULTS)
    for key, value in (section or {}).items():
        if key not in SCALING_DEFAULTS:
            raise ConfigError(f"unknown key bench.scaling.{key}; allowed: {sorted(SCALING_DEFAULTS)}")
        out[key] = {**out[key], **(value or {})} if isinstance(out[key], dict) else value  # dicts merge key-wise
    unknown = [m for m in out["models"] if m not in RUNNERS]
    if unknown:
        raise ConfigError(f"unknown bench model(s) {unknown}; known: {sorted(RUNNERS)}")
    if int(out["events"]) < 1 or int(out["repeats"]) < 1 or int(out["warmup"]) < 0:
        raise ConfigError("bench.scaling: events and repeats must be >= 1, warmup >= 0")
    return out


# --- events -----------------------------------------------------------------------------------------

@dataclass
class SizePoint:
    label: str                 # "10 tracks" ... or "full"
    events: list               # trackpipe.io.store.Event per source event

    @property
    def n_tracks(self) -> float:
        return float(np.mean([int((e.particles.nhits > 0).sum()) for e in self.events]))

    @property
    def n_hits(self) -> float:
        return float(np.mean([len(e.hits) for e in self.events]))


def _with_weights(event):
    from ..io.store import Event
    from ..weights import hit_weights

    w = hit_weights(event.hits, event.particles, phase=1).astype(np.float32)
    return Event(event.event_id, event.hits.assign(weight=w), event.particles, event.cells)


def scaling_events(cfg: dict) -> list[SizePoint]:
    """The event sets of every size: each source event reduced to each track count (seeded per size/event)."""
    from ..reduce import sample_particles
    from ..sim.trackml_like import simulate_trackml

    sources = list(simulate_trackml({"volumes": list(cfg["volumes"])}, range(int(cfg["events"])), int(cfg["seed"])))
    points = []
    for n in cfg["n_tracks"]:
        evs = []
        for ev in sources:
            rng = np.random.default_rng(np.random.SeedSequence([int(cfg["seed"]), int(n), int(ev.event_id)]))
            evs.append(_with_weights(sample_particles(ev, rng, (int(n), int(n)), noise=cfg["noise"])))
        points.append(SizePoint(f"{int(n)} tracks", evs))
    if cfg["full_events"]:
        points.append(SizePoint("full", sources))
    return points


# --- runners ----------------------------------------------------------------------------------------

@dataclass
class Prepared:
    """One event made ready for a model: `run()` is the timed inference (returns track ids or None)."""

    run: Callable[[], object]
    flops: int | None = None        # analytic FLOPs of the encoder forward inside run (None: no encoder)
    compute_call: bool = False      # run() is (nearly) only the encoder forward: GFLOP/s is meaningful


class Runner:
    """Builds per-event callables for one model on one device; `uses_torch` runners can time on CUDA."""

    uses_torch = True

    def __init__(self, name: str, cfg: dict, device: torch.device, prep):
        self.name, self.cfg, self.device, self.prep = name, cfg, device, prep

    def prepare(self, event) -> Prepared:
        raise NotImplementedError

    def inputs(self, event) -> dict:
        from ..models.attention import AttentionMask

        x = torch.as_tensor(self.prep.inputs(event.hits), device=self.device)[None]
        valid = torch.ones(x.shape[:2], dtype=torch.bool, device=self.device)
        return {"x": x, "valid": valid, "mask": AttentionMask(valid)}


def _arch(cfg: dict, **overrides) -> dict:
    from ..models.registry import ARCHITECTURE

    arch = {**ARCHITECTURE, **cfg["architecture"], **overrides}
    arch["dropout"] = 0.0  # inference: dropout is inactive in eval mode anyway
    return arch


class HelixDBSCAN(Runner):
    uses_torch = False

    def prepare(self, event):
        from ..tracking.helix_dbscan import helix_dbscan_labels

        h = event.hits
        xyz = h.x.to_numpy(), h.y.to_numpy(), h.z.to_numpy()
        return Prepared(lambda: helix_dbscan_labels(*xyz, dict(self.cfg["helix_dbscan"])))


class HeadModel(Runner):
    """EncCla / EncReg from the model registry, fresh weights, with their own track assignment."""

    def __init__(self, name, cfg, device, prep):
        super().__init__(name, cfg, device, prep)
        from ..models.registry import TRACKING, build_model, resolve_config

        config = resolve_config(name, {"architecture": _arch(cfg)})
        self.model = build_model(config, prep).to(device).eval()
        self.hdbscan = {"min_cluster_size": TRACKING["min_cluster_size"][0], "min_samples": TRACKING["min_samples"][0]}
        arch, in_dim = encoder_arch(self.model.encoder)
        self.arch, self.in_dim = arch, in_dim
        self.head_outputs = self.model.head.proj.out_features

    def prepare(self, event):
        from ..tracking.assign import tracks_from_classes, tracks_from_regression

        batch = self.inputs(event)
        flops = encoder_flops(len(event.hits), self.arch, self.in_dim, head_outputs=self.head_outputs)["total"]

        def run():
            with torch.inference_mode():
                out = self.model(batch)
            if self.name == "enccla":
                return tracks_from_classes(out["logits"][0].argmax(-1).cpu().numpy(), self.prep.noise_class)
            return tracks_from_regression(out["pred"][0].float().cpu().numpy(), **self.hdbscan)

        return Prepared(run, flops, compute_call=self.name == "enccla")


def locality_blocks(event, locality: dict):
    """Projection + clustering + block tables of one event (the locality tracker's pre-attention work)."""
    from ..locality.blocks import build_blocks
    from ..locality.pipeline import cluster_event

    r = cluster_event(event.hits, locality["algorithm"], locality["params"], locality["projection"], event=event.event_id)
    return build_blocks(r.hit_index, r.cluster_id, r.n_hits, locality["blocks"])


class EncoderForward(Runner):
    """The bare encoder forward: dense sdpa, or attention restricted to locality clusters."""

    def __init__(self, name, cfg, device, prep):
        super().__init__(name, cfg, device, prep)
        from ..models.backbone import Encoder

        blocked = name != "encoder-dense"
        arch = _arch(cfg, attention="cluster-blocked" if blocked else "sdpa")
        torch.manual_seed(0)
        self.encoder = Encoder(len(prep.input_features), **arch).to(device).eval()
        self.arch, self.in_dim = encoder_arch(self.encoder)
        self.blocked = blocked

    def blocks(self, event):
        return locality_blocks(event, self.cfg["locality"])

    def forward(self, batch):
        with torch.inference_mode():
            return self.encoder(batch["x"], batch["mask"])

    def prepare(self, event):
        batch = self.inputs(event)
        n = len(event.hits)
        if not self.blocked:
            return Prepared(lambda: self.forward(batch), encoder_flops(n, self.arch, self.in_dim)["total"], True)
        blocks = self.blocks(event)
        flops = encoder_flops(n, self.arch, self.in_dim, cluster_sizes=np.bincount(blocks.token_cluster))["total"]
        if self.name == "encoder-blocked":
            batch["mask"].extra["blocks"] = blocks
            return Prepared(lambda: self.forward(batch), flops, True)

        def run():  # the locality tracker: clustering and block tables are part of every event's cost
            batch["mask"].extra["blocks"] = self.blocks(event)
            return self.forward(batch)

        return Prepared(run, flops, False)


RUNNERS: dict[str, type[Runner]] = {
    "helix-dbscan": HelixDBSCAN, "enccla": HeadModel, "encreg": HeadModel,
    "encoder-dense": EncoderForward, "encoder-blocked": EncoderForward, "locality": EncoderForward,
}


# --- the study --------------------------------------------------------------------------------------

def _score(event, track_ids) -> float:
    from ..metrics import trackml_score

    truth = event.hits[["event_id", "hit_id", "particle_id", "weight"]]
    sub = pd.DataFrame({"event_id": event.event_id, "hit_id": event.hits.hit_id.to_numpy(np.int64),
                        "track_id": np.asarray(track_ids, np.int64)})
    return trackml_score(truth, sub)


def measure_point(runner: Runner, point: SizePoint, cfg: dict, *, score: bool, reference=None) -> dict:
    """Timing, memory, FLOPs (and the baseline's score) of one model on one event set.

    The first warm-up call on event 0 also gives the peak memory (so no call is spent on it alone); the
    timed rounds go over every event; `reference` (a ``hardware.MatmulReference``) is timed once per round
    for rows whose timed call is the encoder forward, and their fraction of peak is taken against it.
    """
    prepared = [runner.prepare(ev) for ev in point.events]
    warmup = int(cfg["warmup"])
    peak_mb = peak_memory_mb(prepared[0].run, device=runner.device) if warmup else None
    for _ in range(warmup - 1):
        prepared[0].run()
    compute = prepared[0].compute_call and prepared[0].flops is not None
    if compute and reference is not None:
        reference.times = []
        reference()  # warm-up of the reference itself
    times, outputs = [], []
    for r in range(int(cfg["repeats"])):
        if compute and reference is not None:
            reference.time_once()
        for p in prepared:
            times.extend(time_call(p.run, repeats=1, warmup=0, device=runner.device,
                                   results=outputs if r == 0 else None))
    if peak_mb is None:
        peak_mb = peak_memory_mb(prepared[0].run, device=runner.device)
    stats = summarise(times)
    row = {"model": runner.name, "size": point.label, "n_tracks": point.n_tracks, "n_hits": point.n_hits,
           "device": runner.device.type, "ms_median": stats["median"], "ms_p90": stats["p90"], "n_calls": stats["n"],
           "peak_mb": peak_mb, "score": None, "gflop": None, "gflops": None, "ref_gflops": None}
    flops = [p.flops for p in prepared if p.flops is not None]
    if flops:
        row["gflop"] = float(np.mean(flops)) / 1e9
    if compute:
        row["gflops"] = row["gflop"] / (stats["median"] * 1e-3)
        if reference is not None:
            row["ref_gflops"] = reference.gflops()
    if score:
        row["score"] = float(np.mean([_score(ev, out) for ev, out in zip(point.events, outputs)]))
    return row


def _devices(cfg: dict) -> list[torch.device]:
    devices = [torch.device("cpu")]
    if cfg["gpu"] in ("auto", True) and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    return devices


def run_scaling(cfg: dict, points: list[SizePoint] | None = None, *, on_row=None, reference_n: int = 1024) -> list[dict]:
    """Measure every (model, size, device) of the config; rows as in `measure_point`."""
    from ..targets import fit_preprocessing
    from .hardware import MatmulReference

    points = points if points is not None else scaling_events(cfg)
    ref = points[-1].events[0]
    prep = fit_preprocessing(ref.hits, ref.particles, kind="trackml")
    rows = []
    for name in cfg["models"]:
        cls = RUNNERS[name]
        for device in _devices(cfg) if cls.uses_torch else [torch.device("cpu")]:
            runner = cls(name, cfg, device, prep)
            reference = MatmulReference(reference_n, device=device)
            limit = cfg["max_hits"].get(name)
            for point in points:
                if limit is not None and point.n_hits > limit:
                    log.info("bench: %s skips %s (%.0f hits > max_hits %s)", name, point.label, point.n_hits, limit)
                    continue
                t0 = time.perf_counter()
                row = measure_point(runner, point, cfg, score=name == "helix-dbscan", reference=reference)
                log.info("bench: %s %s %s: %.1f ms median (%.0f s)", name, device.type, point.label,
                         row["ms_median"], time.perf_counter() - t0)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows


def scaling_table(rows: list[dict]) -> pd.DataFrame:
    """The ``results/bench/scaling.csv`` table (CPU rows): exactly ``plots.scaling.SCALING_COLUMNS``."""
    df = pd.DataFrame([r for r in rows if r["device"] == "cpu"], columns=[*SCALING_COLUMNS, "device"])
    return df[list(SCALING_COLUMNS)].reset_index(drop=True)


def exponents(rows: list[dict], window=(5000, 60000)) -> dict:
    """Fitted power-law exponent of median time vs hits per (model, device): over all sizes and in `window`."""
    df = pd.DataFrame(rows)
    out = {}
    if df.empty:
        return out
    lo, hi = window
    for (model, device), g in df.groupby(["model", "device"], sort=False):
        w = g[(g.n_hits >= lo) & (g.n_hits <= hi)]
        k_all, _ = fit_power_law(g.n_hits, g.ms_median)
        k_win, _ = fit_power_law(w.n_hits, w.ms_median)
        out[f"{model}/{device}"] = {"model": model, "device": device, "k_all": k_all, "k_window": k_win,
                                    "window_points": int(len(w)), "hits_range": [float(g.n_hits.min()), float(g.n_hits.max())]}
    return out
