"""Inference: one event at a time (batch size 1, as in the papers' timing), tracks, submission, timing.

Per-event timing follows the papers' split: `device_ms` is the forward pass alone (CUDA events on a
GPU, wall clock on CPU), `host_cpu_ms` the CPU time (`time.process_time`, summed over threads) of the
pre-processing (normalisation, tensors, locality clusters and block tables when the model uses them)
and post-processing (argmax / HDBSCAN / embedding neighbours, track ids), and
`wall_ms` the whole event including reading it from the store. Before the first timed event the
whole per-event pipeline (pre-processing, forward pass, post-processing such as HDBSCAN or the
embedding's track formation) runs untimed on the first event (`warmup` times; families with their own
inference once), so no timed row carries a one-off start-up cost.

Inference reads no truth: it runs on stores without truth (manifest ``"truth": false``) as on any
other. Only what compares with the truth needs it and refuses such a store with a DataError:
posteriors (they record each hit's true class) and EncDec decoding from truth seeds.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .device import DeviceTimer, select_device, set_threads
from .errors import ConfigError, DataError
from .io.atomic import write_csv, write_parquet
from .io.store import EventStore
from .io.submission import write_submission
from .models.attention import AttentionMask
from .models.registry import MODELS, build_model, recorded_config
from .progress import progress
from .targets import Preprocessing, hit_parameters
from .tracking.embedding import hit_layers
from .train.locality import blocks_for_event, locality_settings
from .train.loop import CHECKPOINT, amp_settings
from .schema import TIMING

log = logging.getLogger(__name__)


def load_model(model_dir, device: torch.device):
    """(model in eval mode with its best weights, resolved config, preprocessing) of a model directory."""
    model_dir = Path(model_dir)
    for name in ("config.json", "preprocessing.json", CHECKPOINT):
        if not (model_dir / name).is_file():
            raise DataError(f"model directory lacks {name} (train it with 'trackpipe train')", file=model_dir)
    cfg = recorded_config(json.loads((model_dir / "config.json").read_text()))
    prep = Preprocessing.from_json(json.loads((model_dir / "preprocessing.json").read_text()))
    model = build_model(cfg, prep)
    ckpt = torch.load(model_dir / CHECKPOINT, map_location="cpu", weights_only=False)
    model.load_state_dict(ckpt["best_model"] if ckpt.get("best_model") is not None else ckpt["model"])
    return model.to(device).eval(), cfg, prep


def attention_used(cfg: dict, dev: torch.device, amp: tuple[bool, torch.dtype]) -> str:
    """The attention computation the network actually runs for `cfg` on `dev` with autocast `amp`
    (`models.attention.resolved_attention`); it goes into the timing CSV's ``attention`` column and
    from there into metrics.json."""
    from .models.attention import resolved_attention

    arch = cfg.get("architecture") or {}
    dtype = amp[1] if amp[0] else torch.float32
    return resolved_attention(arch.get("attention", "sdpa"), arch.get("attention_options"), dev.type, dtype)


def timing_summary(timing: pd.DataFrame) -> dict:
    """Medians and p90 of the timed events (warm-up passes were never timed), as evaluate reports them."""
    from .evaluate import prediction_timing_summary

    return prediction_timing_summary(timing)


def _posterior_rows(event, logits, prep: Preprocessing, rng, n_hits: int, top: int) -> pd.DataFrame:
    hits = event.hits
    chosen = np.sort(rng.choice(len(hits), size=min(n_hits, len(hits)), replace=False))
    prob = torch.softmax(logits[chosen].float(), dim=-1)
    p, c = prob.topk(min(top, prob.shape[-1]), dim=-1)
    true = prep.classes(hit_parameters(hits.iloc[chosen].reset_index(drop=True), event.particles, prep.kind))
    k = p.shape[1]
    return pd.DataFrame({
        "event_id": np.int64(event.event_id),
        "hit_id": np.repeat(hits.hit_id.to_numpy(np.int64)[chosen], k),
        "particle_id": np.repeat(hits.particle_id.to_numpy(np.int64)[chosen], k),
        "true_class": np.repeat(true, k),
        "rank": np.tile(np.arange(k, dtype=np.int32), len(chosen)),
        "class_id": c.numpy().ravel().astype(np.int64),
        "probability": p.numpy().ravel().astype(np.float32),
    })


def _predict_family(family_predict, model, cfg, prep, store, out, timing, dev, warmup: int) -> dict:
    """Families with their own per-event inference (EncDec decoding, U-Net voxels), same outputs:
    `device_ms` = the model's own calls, `host_cpu_ms` = process time of the rest, `wall_ms` = the whole
    event including reading it (EncDec's wall clock per event, as in the paper's Table 2)."""
    ids = store.event_ids
    with torch.inference_mode():
        for _ in range(min(warmup, 1) if len(ids) else 0):  # one untimed event warms the allocator/kernels
            family_predict(model, cfg, prep, store.read_event(ids[0]), dev)
        subs, rows = [], []
        for eid in progress(ids, desc="predict", unit="event"):
            w0 = time.perf_counter()
            event = store.read_event(eid)
            tracks, device_s, host_s = family_predict(model, cfg, prep, event, dev)
            subs.append(pd.DataFrame({"event_id": np.int64(eid), "hit_id": event.hits.hit_id.to_numpy(np.int64),
                                      "track_id": np.asarray(tracks, np.int64)}))
            rows.append((int(eid), len(event.hits), device_s * 1e3, host_s * 1e3,
                         (time.perf_counter() - w0) * 1e3, dev.type))
    write_submission(out, pd.concat(subs, ignore_index=True))
    timing_df = pd.DataFrame(rows, columns=TIMING.names)
    if timing is not None:
        write_csv(timing, timing_df)
    summary = timing_summary(timing_df)
    log.info("predicted %d events with %s on %s: %s", len(ids), cfg["model"], dev, summary)
    return summary


def predict(model_dir, data, out, *, timing=None, posteriors=None, threads: int | None = None,
            device: str = "auto", warmup: int = 3, posterior_events: int = 1, posterior_hits: int = 20,
            posterior_top: int = 10, seed: int = 0) -> dict:
    """Tracks for every event of the store `data` -> submission CSV `out` (+ timing CSV, posteriors).

    Returns the timing summary (medians and p90 over the timed events).
    """
    set_threads(threads)
    dev = select_device(device)
    model, cfg, prep = load_model(model_dir, dev)
    store = EventStore(data)
    spec = MODELS[cfg["model"]]
    family_predict = spec.predict
    if family_predict is not None:
        if posteriors is not None:
            raise ConfigError(f"posteriors are not available for model {cfg['model']!r}")
        if (cfg.get("tracking") or {}).get("seeds") == "truth":
            store.require_truth(f"{cfg['model']} decoding from truth seeds (tracking.seeds: truth)")
        return _predict_family(family_predict, model, cfg, prep, store, out, timing, dev, warmup)
    if posteriors is not None:
        store.require_truth("posteriors (they record the true class of each hit)")
    if posteriors is not None and model.task != "classification":
        raise ConfigError(f"posteriors need a classifier; model {cfg['model']!r} is a {model.task} model")
    if spec.to_tracks is None:
        raise ConfigError(f"model {cfg['model']!r} has neither a predict nor a to_tracks hook (models.registry)")
    if spec.select is not None and not prep.clustering:  # the family's tracking parameters come from training
        raise DataError("preprocessing.json has no clustering parameters (training did not finish)",
                        file=Path(model_dir) / "preprocessing.json")
    locality = locality_settings(cfg)  # cluster-restricted attention / contrastive: tables per event
    amp = amp_settings(cfg["training"]["amp"], dev)
    attention = attention_used(cfg, dev, amp)
    from .models.attention import FALLBACK

    (log.warning if FALLBACK in attention else log.info)("%s attention on %s: %s", cfg["model"], dev, attention)
    rng = np.random.default_rng(seed)
    # particle_id only for the posteriors' true class: prediction itself never reads the truth.
    columns = (["event_id", "hit_id", "x", "y", "z"] + (["particle_id"] if posteriors is not None else [])
               + (["volume_id", "layer_id"] if locality else []))

    def forward(event):
        batch = {"x": torch.from_numpy(prep.inputs(event.hits))[None].to(dev)}
        batch["valid"] = torch.ones(batch["x"].shape[:2], dtype=torch.bool, device=dev)
        batch["mask"] = AttentionMask(batch["valid"])
        if locality is not None:
            batch["mask"].extra["blocks"] = blocks_for_event(event.event_id, event.hits, locality)
            batch["layer"] = hit_layers(event.hits)  # one-hit-per-layer track formation (tracking.embedding)
            batch["xyz"] = event.hits[["x", "y", "z"]].to_numpy(np.float64)  # its helix test (tracking.helix)
        return batch

    def track_event(event):
        """The whole per-event pipeline after reading: pre-processing, forward pass, track building.
        Returns (track ids, network output, device ms, host CPU seconds)."""
        c0 = time.process_time()
        batch = forward(event)
        host = time.process_time() - c0
        with DeviceTimer(dev) as timer:
            out_t = model(batch)
        c0 = time.process_time()
        tracks = spec.to_tracks(out_t, batch, prep)
        host += time.process_time() - c0
        return tracks, out_t, timer.ms, host

    ids = store.event_ids
    with torch.inference_mode(), torch.autocast(dev.type, dtype=amp[1], enabled=amp[0]):
        if len(ids) and warmup > 0:
            # Untimed warm-up of the *whole* per-event pipeline (kernels, allocator, HDBSCAN's or the
            # embedding neighbours' first call, lazy imports): the first timed event is steady state,
            # as in the paper, which omits the first iteration of the inference loop.
            event0 = store.read_event(ids[0], columns=columns)
            for _ in range(warmup):
                track_event(event0)
        subs, rows, post = [], [], []
        for i, eid in enumerate(progress(ids, desc="predict", unit="event")):
            w0 = time.perf_counter()
            event = store.read_event(eid, columns=columns)
            tracks, out_t, device_ms, host = track_event(event)
            subs.append(pd.DataFrame({"event_id": np.int64(eid), "hit_id": event.hits.hit_id.to_numpy(np.int64),
                                      "track_id": tracks}))
            rows.append((int(eid), len(event.hits), device_ms, host * 1e3, (time.perf_counter() - w0) * 1e3, dev.type))
            if posteriors is not None and i < posterior_events:
                post.append(_posterior_rows(event, out_t["logits"][0].cpu(), prep, rng, posterior_hits, posterior_top))
    write_submission(out, pd.concat(subs, ignore_index=True))
    # The attention path actually used rides along (an extra column evaluate carries into metrics.json).
    timing_df = pd.DataFrame(rows, columns=TIMING.names).assign(attention=attention)
    if timing is not None:
        write_csv(timing, timing_df)
    if posteriors is not None:
        write_parquet(posteriors, pd.concat(post, ignore_index=True))
    summary = timing_summary(timing_df)
    log.info("predicted %d events with %s on %s: %s", len(ids), cfg["model"], dev, summary)
    return summary
