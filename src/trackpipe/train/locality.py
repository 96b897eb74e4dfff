"""Locality clusters for training and inference: block tables per event, per batch, and per-hit pT.

A model uses locality clusters when its ``architecture.attention_options`` holds a ``locality`` section
(or its backend is ``cluster-blocked``, which then takes the defaults below)::

    locality:
      algorithm: dbscan      # a name from locality.clustering (dbscan | iterative_window | density_peaks | grid_window)
      clustering: {}         # per-region parameters {barrel: {...}, endcap: {...}} (locality.pipeline.REGION_DEFAULTS)
      projection: {}         # locality.projection.PROJECTION_DEFAULTS overrides
      blocks: {}             # locality.blocks.BLOCK_DEFAULTS overrides (block_size, min_bucket)

Each event's tables are built once by ``locality.event_blocks`` and cached on disk (training: under the
model directory), so later epochs and resumed runs load them. A batch of several events is one flattened
sequence of B·N_max hits (event b's hit i at b·N_max + i) whose tables are the events' clusters shifted
by their offsets plus one single-hit cluster per padding slot, so events never attend to each other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError

LOCALITY_DEFAULTS = {"algorithm": "dbscan", "clustering": {}, "projection": {}, "blocks": {}}


def locality_settings(cfg: dict) -> dict | None:
    """The resolved locality section of a model config, or None when the model does not use clusters."""
    arch = cfg["architecture"]
    options = arch.get("attention_options") or {}
    section = options.get("locality")
    if section is None and arch["attention"] != "cluster-blocked":
        return None
    section = dict(section or {})
    unknown = set(section) - set(LOCALITY_DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown locality keys {sorted(unknown)}; allowed: {sorted(LOCALITY_DEFAULTS)}")
    return {**LOCALITY_DEFAULTS, **section}


def blocks_for_event(event_id, hits: pd.DataFrame, settings: dict, cache_dir=None):
    """Block tables of one event (hits with x, y, z [, volume_id]); cached under cache_dir if given."""
    from ..locality.pipeline import event_blocks

    blocks, _ = event_blocks(int(event_id), hits, settings["algorithm"], settings["clustering"] or None,
                             settings["projection"] or None, settings["blocks"] or None, cache_dir)
    return blocks


def hit_pt(hits: pd.DataFrame, particles: pd.DataFrame) -> np.ndarray:
    """Transverse momentum of each hit's particle (0 for noise), float32, in hit order."""
    pt = particles[["event_id", "particle_id"]].assign(
        _pt=np.hypot(particles.px.to_numpy(np.float64), particles.py.to_numpy(np.float64)))
    joined = hits[["event_id", "particle_id"]].merge(pt, on=["event_id", "particle_id"], how="left",
                                                      validate="many_to_one")
    return joined["_pt"].fillna(0.0).to_numpy(np.float32)


def attach_locality(data, hits: pd.DataFrame, particles: pd.DataFrame | None, settings: dict, cache_dir=None) -> None:
    """Give `data` (an EventArrays built from `hits`) its per-event block tables and, with particles,
    the per-hit field ``pt`` (the contrastive loss's anchor selection)."""
    blocks = []
    for i, eid in enumerate(data.event_ids):
        a, b = data.offsets[i], data.offsets[i + 1]
        blocks.append(blocks_for_event(eid, hits.iloc[a:b].reset_index(drop=True), settings, cache_dir))
    data.blocks = blocks
    if particles is not None:
        data.fields["pt"] = hit_pt(hits, particles)


def batch_blocks(event_blocks: list, n_max: int):
    """Tables of a batch flattened to B·n_max hits (one event: its own tables, unchanged)."""
    from ..locality.blocks import build_blocks

    if len(event_blocks) == 1 and event_blocks[0].n_hits == n_max:
        return event_blocks[0]
    index, cluster, offset = [], [], 0
    for b, eb in enumerate(event_blocks):
        index.append(eb.token_hit + b * n_max)
        cluster.append(eb.token_cluster + offset)
        offset += eb.n_clusters
        pad = np.arange(eb.n_hits, n_max, dtype=np.int64)
        index.append(pad + b * n_max)
        cluster.append(offset + np.arange(len(pad), dtype=np.int64))
        offset += len(pad)
    return build_blocks(np.concatenate(index), np.concatenate(cluster), len(event_blocks) * n_max,
                        {"block_size": event_blocks[0].block_size})


def load_arrays(store, prep, event_ids, settings: dict | None, cache_dir=None):
    """EventArrays of the chosen events of `store`, with locality tables and pT when `settings` is given."""
    from .data import EventArrays, load_tables

    hits, particles = load_tables(store, event_ids)
    data = EventArrays.from_tables(hits, particles, prep)
    if settings is not None:
        attach_locality(data, hits, particles, settings, cache_dir)
    return data
