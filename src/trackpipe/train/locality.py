"""Locality clusters for training and inference: block tables per event, per batch, per-hit pT (and, for
validation, the truth that threshold selection scores DM efficiency with).

A model uses locality clusters when its ``architecture.attention_options`` holds a ``locality`` section
(or its backend is ``cluster-blocked``, which then takes the defaults below)::

    locality:
      algorithm: grid_window # a name from locality.clustering (dbscan | iterative_window | density_peaks | grid_window)
      clustering: {}         # per-region parameters {barrel: {...}, endcap: {...}} (locality.pipeline.REGION_DEFAULTS)
      projection: {}         # locality.projection.PROJECTION_DEFAULTS overrides
      blocks: {}             # locality.blocks.BLOCK_DEFAULTS overrides (block_size, min_bucket)
      train_chunk_hits: 0    # > 0: training events are cut into chunks of whole clusters of about this many hits

Chunks of disjoint clusters are exact sub-problems: attention never crosses a cluster (clusters linked by a
shared hit stay in one chunk), and the encoder is otherwise per hit, so every hit's embedding and loss terms
are the same as in the whole event; a big event then gives many optimiser steps per epoch instead of one.
The default neighbourhoods (grid windows overlapping on both axes) link a whole region through shared
hits; such a region is cut between windows, and hits cut from some of their windows are keys but not
anchors there (``chunk_by_clusters``).

Each event's tables are built once by ``locality.event_blocks`` and cached on disk (training: under the
model directory), so later epochs and resumed runs load them. A batch of several events is one flattened
sequence of B·N_max hits (event b's hit i at b·N_max + i) whose tables are the events' clusters shifted
by their offsets plus one single-hit cluster per padding slot, so events never attend to each other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .data import EventArrays, load_tables

LOCALITY_DEFAULTS = {"algorithm": "grid_window", "clustering": {}, "projection": {}, "blocks": {},
                     "train_chunk_hits": 0}


def locality_settings(cfg: dict) -> dict | None:
    """The resolved locality section of a model config, or None when the model does not use clusters."""
    arch = cfg["architecture"]
    options = arch.get("attention_options") or {}
    section = options.get("locality")
    if section is None and arch.get("attention") != "cluster-blocked":
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


SELECTION_HIT_COLUMNS = ("volume_id", "layer_id")  # read for validation events only (`selection_truth`)


def selection_truth(hits: pd.DataFrame, particles: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-hit fields, in the order of `hits` (read with `SELECTION_HIT_COLUMNS`), that the DM efficiency of
    track formation's selection (`tracking.embedding.select_threshold`) needs beside ``pt``: the
    particle's ``pz`` (0 for noise; with pt it gives eta), the hit's ``volume_id`` and ``layer_id``
    (reconstructable = hits on >= 3 layers) and its ``hit_xyz`` (x, y, z in mm: the helix test of
    `tracking.helix`)."""
    pz = hits[["event_id", "particle_id"]].merge(particles[["event_id", "particle_id", "pz"]],
                                                 on=["event_id", "particle_id"], how="left", validate="many_to_one")
    return {"pz": pz["pz"].fillna(0.0).to_numpy(np.float32),
            "volume_id": hits["volume_id"].to_numpy(np.int32), "layer_id": hits["layer_id"].to_numpy(np.int32),
            "hit_xyz": hits[["x", "y", "z"]].to_numpy(np.float64)}


def load_arrays(store, prep, event_ids, settings: dict | None, cache_dir=None, *, chunk: bool = False,
                raw: bool = False, copies: dict | None = None, seed: int = 0):
    """EventArrays of the chosen events of `store`, with locality tables and pT when `settings` is given;
    ``chunk=True`` (training split) applies ``train_chunk_hits``, ``chunk=False`` (validation) adds the
    fields of `selection_truth`; ``raw`` keeps augmentation's fields.

    copies: a resolved ``training.augment`` section whose ``copies`` transformed copies of every event
    (`train.augment.transformed_copy`, drawn from (seed, copy)) follow the original events, each copy's
    tables cached in its own sub-directory of `cache_dir`.
    """
    from pathlib import Path

    from .augment import transformed_copy

    validation = settings is not None and not chunk
    hits, particles = load_tables(store, event_ids, extra_columns=SELECTION_HIT_COLUMNS if validation else ())
    variants = [(hits, particles, cache_dir)]
    for k in range(1, int(copies["copies"]) + 1 if copies else 1):
        h, p = transformed_copy(hits, particles, copies, np.random.default_rng([seed, k, 8191]))
        variants.append((h, p, None if cache_dir is None else Path(cache_dir) / f"copy-{k}"))
    parts = []
    for h, p, cache in variants:
        data = EventArrays.from_tables(h, p, prep, raw=raw)
        if settings is not None:
            attach_locality(data, h, p, settings, cache)
            if chunk and int(settings["train_chunk_hits"]) > 0:
                data = chunk_by_clusters(data, int(settings["train_chunk_hits"]))
            elif validation:
                data.fields.update(selection_truth(h, p))
        parts.append(data)
    return parts[0] if len(parts) == 1 else EventArrays.concat(parts)


def cluster_groups(blocks) -> np.ndarray:
    """Group id per hit: clusters sharing a hit are one group (connected components of hits and clusters)."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    n, c = blocks.n_hits, blocks.n_clusters
    graph = sparse.coo_matrix((np.ones(blocks.n_tokens, np.int8), (blocks.token_hit, n + blocks.token_cluster)),
                              shape=(n + c, n + c))
    _, comp = connected_components(graph, directed=False)
    return np.unique(comp[:n], return_inverse=True)[1]


def _chunk_units(blocks, max_hits: int) -> np.ndarray:
    """Unit id per cluster: a cluster group (clusters linked by shared hits) of at most ``max_hits`` hits
    is one unit; a larger group (overlapping windows link a whole detector region) is cut into runs of
    consecutive cluster ids (neighbouring windows for the grid) of about ``max_hits`` hits each."""
    group_of_hit = cluster_groups(blocks)
    group_of_cluster = np.zeros(blocks.n_clusters, np.int64)
    group_of_cluster[blocks.token_cluster] = group_of_hit[blocks.token_hit]
    hits_per_group = np.bincount(group_of_hit)
    # a cluster's share of its group's hits: its tokens weighted by 1 / multiplicity of each token's hit
    share = np.bincount(blocks.token_cluster, weights=1.0 / blocks.hit_multiplicity[blocks.token_hit],
                        minlength=blocks.n_clusters)
    order = np.argsort(group_of_cluster, kind="stable")  # by group, ascending cluster ids inside
    g, sh = group_of_cluster[order], share[order]
    before = np.cumsum(sh) - sh
    first = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    before -= np.repeat(before[first], np.diff(np.r_[first, len(g)]))  # running share inside the group
    piece = np.where(hits_per_group[g] > max_hits, before // max_hits, 0).astype(np.int64)
    unit = np.empty(blocks.n_clusters, np.int64)
    unit[order] = np.unique(g * (int(piece.max(initial=0)) + 1) + piece, return_inverse=True)[1]
    return unit


def chunk_by_clusters(data, max_hits: int, seed: int = 0):
    """A new EventArrays whose events are chunks of whole clusters (about max_hits hits), taken in a seeded
    random order; each chunk carries its own tables and the boolean field ``interior``.

    Disjoint clusters (and small cluster groups) give exact chunks: whole groups of clusters linked by
    shared hits, every hit in one chunk, ``interior`` everywhere. Overlapping windows link a whole region
    into one group; it is cut between clusters (``_chunk_units``), so a hit near a cut is in several chunks
    with only some of its clusters in each: it is ``interior`` (an anchor of the contrastive loss) only in
    the chunk that holds all of its clusters, if any, and elsewhere a key only. Interior hits attend to
    exactly their whole-event neighbourhoods, but a cut neighbour's cluster-relative features and, after
    the first layer, its hidden state differ from the whole event's (it misses some windows), so chunks of
    a region are an approximation, made only where a region exceeds ``max_hits``.
    """
    from ..locality.blocks import build_blocks

    rng = np.random.default_rng(seed)
    rows, ids, blocks, interior = [], [], [], []
    for i, eb in enumerate(data.blocks):
        unit = _chunk_units(eb, max_hits)
        n_units = int(unit.max(initial=-1)) + 1
        # hits per unit (a hit in several units counts in each): tokens weighted by 1 / multiplicity would
        # undercount duplicated hits, so count distinct (unit, hit) pairs
        pairs = np.unique(unit[eb.token_cluster] * eb.n_hits + eb.token_hit)
        sizes = np.bincount(pairs // eb.n_hits, minlength=n_units)
        order = rng.permutation(n_units)
        # shuffled units cut by their running size: each chunk holds about max_hits hits (at most max_hits
        # plus its last unit)
        before = np.cumsum(sizes[order]) - sizes[order]
        chunk_of_unit = np.empty(n_units, np.int64)
        chunk_of_unit[order] = np.unique(before // max_hits, return_inverse=True)[1]
        token_chunk = chunk_of_unit[unit[eb.token_cluster]]
        for j in range(int(chunk_of_unit.max(initial=-1)) + 1):
            keep = token_chunk == j
            members, local = np.unique(eb.token_hit[keep], return_inverse=True)
            blocks.append(build_blocks(local, eb.token_cluster[keep], len(members), {"block_size": eb.block_size}))
            interior.append(np.bincount(local, minlength=len(members)) == eb.hit_multiplicity[members])
            rows.append(data.offsets[i] + members)
            ids.append(data.event_ids[i])
    rows_all = np.concatenate(rows)
    offsets = np.r_[0, np.cumsum([len(r) for r in rows])]
    fields = {k: v[rows_all] for k, v in data.fields.items()}
    fields["interior"] = np.concatenate(interior)
    return EventArrays(np.asarray(ids, np.int64), offsets, fields, blocks)
