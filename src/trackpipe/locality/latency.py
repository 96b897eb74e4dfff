"""Per-event latency of the locality tracker (seed 004 Table 1) and the locality study files.

Components per event, milliseconds:

* ``clustering_and_masks``: projection, clustering, block tables, input normalisation and the device-side
  index tensors / FlexAttention BlockMask (CPU wall clock; built before the forward so the forward times
  the encoder alone);
* ``encoder_forward``: the model's forward pass (CUDA events on a GPU, wall clock on CPU);
* ``track_formation``: embedding neighbours -> disjoint track ids (wall clock, CUDA synchronised);
* ``total``: their sum.

Before timing, one event of every FlexAttention length bucket among the timed events is run untimed
(``warmup`` times; the compiled kernel is built once per bucket, ``locality.flex``), so no timed event
includes a compile; the warm-up time per bucket and the number of compiled graphs are reported apart
(``latency_warmup.json``). Medians over the timed events are reported.

``locality_study(store, out_dir, config)`` writes ``clustering.json`` ({algorithm: {region: metrics}}),
``latency.json`` ({component: ms}) and ``latency_warmup.json`` (compile / warm-up time per bucket); with
``tune`` set, ``tuned.json`` (the parameters chosen on the validation split and every candidate); with a
trained ``model_dir`` also ``efficiency.json`` (DM efficiency, pT > 0.9 GeV, per region and vs pT and eta,
on the timed events).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..device import DeviceTimer
from ..errors import ConfigError

log = logging.getLogger(__name__)

COMPONENTS = ("clustering_and_masks", "encoder_forward", "track_formation", "total")
STUDY_DEFAULTS = {
    "algorithms": ["dbscan", "iterative_window", "density_peaks", "grid_window"],
    "params": {},           # {projection, clustering: {ALGO: {barrel, endcap}}, blocks, metrics} (cli.locality)
    "volumes": [7, 8, 9],   # pixel volumes; null = all hits
    "max_events": None,     # clustering metrics over the first N events (null = all)
    "model_dir": None,      # trained contrastive model; null = untrained `model` section (latency only)
    "model": {},            # model section for the untrained fallback (registry `contrastive` defaults)
    "latency_events": 3,    # events timed (after warm-up)
    "warmup": 1,
    "device": "auto",
    "threads": None,
    "tune": None,           # {split, max_events, target_fraction, objective, grids}: tune each algorithm on that
                            # split (locality.tune.tune_on_split) and study the tuned parameters; null = as given
    "pt_bins": [0.9, 1.5, 3.0, 10.0, 100.0],
    "eta_bins": [-4.0, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 4.0],
}


def _device_tables(blocks, device, attention: str) -> None:
    """Build the device-side structures of the tables now (they are cached with the tables)."""
    from .attention import _bucket_tensors, cluster_block_mask

    if device.type == "cuda" and attention in ("flex", "cluster-blocked"):
        cluster_block_mask(blocks, device)
    _bucket_tensors(blocks, device)


def event_latency(model, cfg: dict, prep, event, device: torch.device, tracking: dict) -> tuple[dict, np.ndarray]:
    """({component: ms}, track id per hit) of one event through the contrastive tracker."""
    from ..models.attention import AttentionMask
    from ..tracking.embedding import hit_layers, tracks_from_embedding
    from ..train.locality import blocks_for_event, locality_settings

    settings = locality_settings(cfg)
    if settings is None or model.task != "embedding":
        raise ConfigError("the latency breakdown needs a contrastive model with a locality section")
    t0 = time.perf_counter()
    blocks = blocks_for_event(event.event_id, event.hits, settings)
    x = torch.from_numpy(prep.inputs(event.hits))[None].to(device)
    valid = torch.ones(x.shape[:2], dtype=torch.bool, device=device)
    _device_tables(blocks, device, cfg["architecture"]["attention"])
    if device.type == "cuda":
        torch.cuda.synchronize()
    ms = {"clustering_and_masks": (time.perf_counter() - t0) * 1e3}
    batch = {"x": x, "valid": valid, "mask": AttentionMask(valid, extra={"blocks": blocks})}
    with torch.inference_mode():
        with DeviceTimer(device) as t:
            emb = model(batch)["embedding"][0]
        ms["encoder_forward"] = t.ms
        t0 = time.perf_counter()
        tracks = tracks_from_embedding(emb, blocks, **tracking, layer=hit_layers(event.hits),
                                       xyz=event.hits[["x", "y", "z"]].to_numpy(np.float64))
        ms["track_formation"] = (time.perf_counter() - t0) * 1e3
    ms["total"] = ms["clustering_and_masks"] + ms["encoder_forward"] + ms["track_formation"]
    return ms, tracks


def warm_up(model, cfg: dict, prep, events: list, device: torch.device, tracking: dict, rounds: int = 1) -> dict:
    """Run the first event of every FlexAttention length bucket (``locality.flex``) untimed, ``rounds``
    times each, so that every compile happens here and not in a timed event.

    Returns {"buckets": [{"bucket_tokens", "event_id", "n_hits", "first_ms", "ms"}], "compiled_graphs",
    "warmup_ms"}: ``first_ms`` is the bucket's first call (compile included), ``ms`` its last warm-up
    call, ``compiled_graphs`` the graphs torch.compile built meanwhile (0 on the eager CPU path).
    """
    from torch._dynamo.utils import counters

    from ..train.locality import blocks_for_event, locality_settings
    from .flex import bucket_blocks

    settings = locality_settings(cfg)
    if settings is None:
        raise ConfigError("the latency breakdown needs a contrastive model with a locality section")
    graphs0 = int(counters["stats"]["unique_graphs"])
    seen, report = set(), []
    for ev in events if int(rounds) > 0 else []:
        blocks = blocks_for_event(ev.event_id, ev.hits, settings)
        bucket = bucket_blocks(blocks.n_blocks) * blocks.block_size
        if bucket in seen:
            continue
        seen.add(bucket)
        walls = []
        for _ in range(int(rounds)):
            t0 = time.perf_counter()
            event_latency(model, cfg, prep, ev, device, tracking)
            walls.append((time.perf_counter() - t0) * 1e3)
        report.append({"bucket_tokens": int(bucket), "event_id": int(ev.event_id), "n_hits": len(ev.hits),
                       "first_ms": walls[0], "ms": walls[-1]})
    return {"buckets": report, "compiled_graphs": int(counters["stats"]["unique_graphs"]) - graphs0,
            "warmup_ms": float(sum(r["first_ms"] for r in report))}


def _untrained_model(section: dict, store, event_ids, device):
    """A seeded, untrained contrastive model sized by preprocessing fitted on `store` (latency only)."""
    from ..models.registry import build_model, resolve_config
    from ..targets import fit_preprocessing
    from ..train.data import load_tables

    cfg = resolve_config("contrastive", section)
    hits, particles = load_tables(store, event_ids[:1])
    prep = fit_preprocessing(hits, particles, kind=cfg["targets"]["kind"], bins=cfg["targets"]["bins"],
                             inputs=cfg["targets"]["inputs"])
    torch.manual_seed(0)
    return build_model(cfg, prep).to(device).eval(), cfg, prep


def latency_breakdown(store_path, *, model_dir=None, model_section: dict | None = None, events: int = 3,
                      warmup: int = 1, device: str = "auto", threads: int | None = None,
                      volumes=(7, 8, 9)) -> tuple[dict, pd.DataFrame, pd.DataFrame, dict]:
    """(median ms per component, per-event rows, submission of the timed events, warm-up report).

    Before timing, ``warm_up`` runs one event of every length bucket among the timed events untimed, so
    no timed event pays for a compile; its report (``warm_up``) holds the compile / warm-up time apart.

    With ``model_dir`` the trained model and its chosen track-formation threshold are used; without it an
    untrained model from ``model_section`` (timing only: its tracks mean nothing) and the section's threshold.
    """
    from ..device import select_device, set_threads
    from ..io.store import EventStore
    from ..tracking.embedding import saved_tracking_params, tracking_params
    from .events import pixel_hits

    set_threads(threads)
    dev = select_device(device)
    store = EventStore(store_path)
    ids = list(store.event_ids)
    if not ids:
        raise ConfigError(f"{store_path} holds no events")
    if model_dir is not None:
        from ..predict import load_model

        model, cfg, prep = load_model(model_dir, dev)
        tracking = saved_tracking_params(prep.clustering)
    else:
        model, cfg, prep = _untrained_model(model_section or {}, store, ids, dev)
        tracking = tracking_params(cfg["tracking"])
    columns = ["event_id", "hit_id", "x", "y", "z", "volume_id", "layer_id", "particle_id"]

    def read(eid):
        ev = store.read_event(eid, columns=columns)
        ev.hits = pixel_hits(ev.hits, volumes, event=eid)
        return ev

    timed = ids[:max(int(events), 1)]
    warm = warm_up(model, cfg, prep, [read(e) for e in timed], dev, tracking, warmup)
    rows, subs = [], []
    for eid in timed:
        ev = read(eid)
        ms, tracks = event_latency(model, cfg, prep, ev, dev, tracking)
        rows.append({"event_id": int(eid), "n_hits": len(ev.hits), **ms})
        subs.append(pd.DataFrame({"event_id": np.int64(eid), "hit_id": ev.hits.hit_id.to_numpy(np.int64),
                                  "track_id": tracks}))
    per_event = pd.DataFrame(rows)
    return ({c: float(per_event[c].median()) for c in COMPONENTS}, per_event,
            pd.concat(subs, ignore_index=True), warm)


def region_efficiency(hits: pd.DataFrame, particles: pd.DataFrame, submission: pd.DataFrame, *,
                      projection: dict | None = None, pt_bins=None, eta_bins=None) -> dict:
    """DM efficiency (pT > 0.9 GeV, |eta| < 4, >= 3 layers) per region and vs pT and eta.

    A particle's region is the projection surface (barrel cylinder or endcap planes) holding most of its
    hits (ties: barrel), as in the locality metrics.
    """
    from ..metrics.efficiency import match_tables
    from .projection import BARREL, project_to_surfaces

    ptab, _ = match_tables(hits, particles, submission)
    endcap = np.zeros(len(hits))
    for eid, h in hits.groupby("event_id", sort=False):
        endcap[h.index.to_numpy()] = project_to_surfaces(h, projection, event=eid).region != BARREL
    share = pd.DataFrame({"event_id": hits.event_id.to_numpy(), "particle_id": hits.particle_id.to_numpy(),
                          "endcap": endcap}).groupby(["event_id", "particle_id"]).endcap.mean().rename("endcap_share")
    ptab = ptab.merge(share, how="left", left_on=["event_id", "particle_id"], right_index=True)
    sel = ptab[ptab.selected]
    regions = {"barrel": sel[sel.endcap_share <= 0.5], "endcap": sel[sel.endcap_share > 0.5], "all": sel}

    def eff(t):
        return {"dm_efficiency": float(t.dm_matched.mean()) if len(t) else float("nan"), "n_particles": int(len(t))}

    out = {"regions": {r: eff(t) for r, t in regions.items()}}
    for var, edges in (("pt", pt_bins), ("eta", eta_bins)):
        if edges is None:
            continue
        codes = pd.cut(sel[var], np.asarray(edges, float), right=False)
        out[var] = [{"lo": float(iv.left), "hi": float(iv.right), **eff(t)}
                    for iv, t in sel.groupby(codes, observed=False)]
    return out


def locality_study(store, out_dir, config: dict | None = None) -> dict:
    """Clustering comparison + latency breakdown (+ tracker efficiency with a trained model) of one
    dataset; writes out_dir/{clustering,latency[,efficiency]}.json and returns their contents."""
    from .study import compare_clustering
    from ..io.atomic import write_json, write_csv
    from ..io.store import EventStore

    cfg = {**STUDY_DEFAULTS, **(config or {})}
    unknown = set(config or {}) - set(STUDY_DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown locality study keys {sorted(unknown)}; allowed: {sorted(STUDY_DEFAULTS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    volumes = None if cfg["volumes"] is None else tuple(cfg["volumes"])
    params = cfg["params"]
    tuned = None
    if cfg["tune"] is not None and cfg["algorithms"]:
        from .tune import tune_on_split

        tuned = tune_on_split(store, list(cfg["algorithms"]), cfg["tune"], params, volumes=volumes or None)
        write_json(out_dir / "tuned.json", tuned)
        params = {**params, "clustering": {**params.get("clustering", {}),
                                           **{algo: t["params"] for algo, t in tuned.items()}}}
    clustering = compare_clustering(store, list(cfg["algorithms"]), params, volumes=volumes or None,
                                    max_events=cfg["max_events"])
    write_json(out_dir / "clustering.json", clustering)
    latency, per_event, submission, warm = latency_breakdown(
        store, model_dir=cfg["model_dir"], model_section=cfg["model"], events=cfg["latency_events"],
        warmup=cfg["warmup"], device=cfg["device"], threads=cfg["threads"], volumes=volumes)
    write_json(out_dir / "latency.json", latency)
    write_json(out_dir / "latency_warmup.json", warm)
    write_csv(out_dir / "latency_per_event.csv", per_event)
    result = {"clustering": clustering, "latency": latency, "latency_warmup": warm}
    if tuned is not None:
        result["tuned"] = tuned
    if cfg["model_dir"] is not None:
        st = EventStore(store)
        ids = submission.event_id.unique()
        hits = st.hits(columns=["event_id", "hit_id", "x", "y", "z", "volume_id", "layer_id", "particle_id"])
        hits = hits[hits.event_id.isin(ids) & (hits.volume_id.isin(volumes) if volumes else True)].reset_index(drop=True)
        particles = st.particles()
        particles = particles[particles.event_id.isin(ids)]
        result["efficiency"] = region_efficiency(hits, particles, submission,
                                                 projection=cfg["params"].get("projection"),
                                                 pt_bins=cfg["pt_bins"], eta_bins=cfg["eta_bins"])
        write_json(out_dir / "efficiency.json", result["efficiency"])
    return result
