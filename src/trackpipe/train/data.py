"""Events as in-memory arrays, batch plans (shuffled, optionally length-bucketed) and padding.

The whole split is encoded once, vectorised over all its hits (one pass over the store's tables), and
kept as one flat array per field plus event offsets: the toy and reduced TrackML sets fit easily, and
a batch then costs only slicing and padding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ..errors import DataError
from ..io.store import EventStore
from ..models.attention import AttentionMask
from ..targets import Preprocessing


def load_tables(store: EventStore, event_ids=None, *, extra_columns=()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hits and particles of the chosen events, hits grouped by event in `event_ids` order; `extra_columns`:
    further hit columns to read in the same pass (e.g. volume_id, layer_id)."""
    hits = store.hits(columns=["event_id", "hit_id", "x", "y", "z", "particle_id", "weight", *extra_columns])
    particles = store.particles()
    if event_ids is not None:
        order = pd.Series(np.arange(len(event_ids)), index=np.asarray(event_ids, np.int64))
        hits = hits[hits.event_id.isin(order.index)]
        hits = hits.assign(_o=order.loc[hits.event_id].to_numpy()).sort_values(["_o", "hit_id"], kind="stable")
        hits = hits.drop(columns="_o").reset_index(drop=True)
        particles = particles[particles.event_id.isin(order.index)].reset_index(drop=True)
    return hits, particles


@dataclass
class EventArrays:
    """Flat per-hit arrays of several events; event i is rows offsets[i]:offsets[i+1].

    blocks: per-event locality block tables (`train.locality.attach_locality`) for cluster-restricted
    attention and the contrastive loss; None for models without locality clusters.
    augment: the training split's `train.augment.Augmentation` (applied by `collate` when given a
    generator); it needs the raw fields (``from_tables(..., raw=True)``).
    """

    event_ids: np.ndarray
    offsets: np.ndarray
    fields: dict[str, np.ndarray]
    blocks: list | None = field(default=None)
    augment: Callable | None = field(default=None)

    @classmethod
    def from_tables(cls, hits: pd.DataFrame, particles: pd.DataFrame | None, prep: Preprocessing, *,
                    raw: bool = False) -> "EventArrays":
        """raw: also keep the hits' coordinates and their particles' parameters (fields ``raw_xyz``,
        ``raw_params``), which augmentation transforms and re-encodes."""
        eid = hits.event_id.to_numpy(np.int64)
        if len(eid) == 0:
            raise DataError("no hits to train or predict on", column="event_id")
        starts = np.flatnonzero(np.r_[True, eid[1:] != eid[:-1]])
        if len(np.unique(eid[starts])) != len(starts):
            raise DataError("hits of an event are not contiguous", column="event_id")
        fields = prep.encode(hits, particles)
        fields["hit_id"] = hits.hit_id.to_numpy(np.int64)
        fields["particle_id"] = hits.particle_id.to_numpy(np.int64)
        fields["weight"] = hits.weight.to_numpy(np.float32)
        if raw and particles is not None:
            from ..targets import hit_parameters
            from .augment import RAW_PARAMS, RAW_XYZ, parameter_columns

            fields[RAW_XYZ] = hits[["x", "y", "z"]].to_numpy(np.float64)
            fields[RAW_PARAMS] = hit_parameters(hits, particles, prep.kind)[parameter_columns(prep.kind)].to_numpy(
                np.float64)
        return cls(eid[starts], np.r_[starts, len(eid)], fields)

    @classmethod
    def from_store(cls, store: EventStore, prep: Preprocessing, event_ids=None, *, targets: bool = True):
        hits, particles = load_tables(store, event_ids)
        return cls.from_tables(hits, particles if targets else None, prep)

    @classmethod
    def concat(cls, parts: list["EventArrays"]) -> "EventArrays":
        """The events of several EventArrays (same fields; all with block tables or none) one after another."""
        if len({tuple(sorted(p.fields)) for p in parts}) != 1:
            raise ValueError("EventArrays to concatenate must have the same fields")
        shifts = np.cumsum([0] + [p.offsets[-1] for p in parts[:-1]])
        offsets = np.concatenate([parts[0].offsets[:1]] + [p.offsets[1:] + s for p, s in zip(parts, shifts)])
        blocks = None if parts[0].blocks is None else [b for p in parts for b in p.blocks]
        return cls(np.concatenate([p.event_ids for p in parts]), offsets,
                   {k: np.concatenate([p.fields[k] for p in parts]) for k in parts[0].fields}, blocks)

    def __len__(self) -> int:
        return len(self.event_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def event(self, i: int) -> dict[str, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return {k: v[a:b] for k, v in self.fields.items()}


def batch_plan(lengths: np.ndarray, batch_size: int, *, seed: int, epoch: int, shuffle: bool = True,
               bucket: bool = False) -> list[np.ndarray]:
    """Event indices of every batch of one epoch, a pure function of (seed, epoch) for exact resume.

    Bucketing sorts events by size inside windows of 50 batches before cutting batches, then shuffles
    the batches, so padding stays small while every epoch still sees a different order.
    """
    n = len(lengths)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n) if shuffle else np.arange(n)
    if bucket:
        window = 50 * batch_size
        order = np.concatenate([chunk[np.argsort(lengths[chunk], kind="stable")]
                                for chunk in np.array_split(order, max(1, -(-n // window)))])
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if shuffle and bucket:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def collate(data: EventArrays, indices, device=None, rng: np.random.Generator | None = None) -> dict:
    """Pad the chosen events to the largest one (padding at the end) into one batch dict of tensors.

    rng: draw each event's augmentation from it (training batches of data that has ``augment``).
    """
    events = [data.event(int(i)) for i in indices]
    if rng is not None and data.augment is not None:
        events = [data.augment(e, rng) for e in events]
    n_max = max(len(e["x"]) for e in events)
    B = len(events)
    valid = np.zeros((B, n_max), bool)
    out = {}
    for key in events[0]:
        if key.startswith("raw_"):  # augmentation's inputs, not the model's
            continue
        first = events[0][key]
        arr = np.zeros((B, n_max) + first.shape[1:], first.dtype)
        for b, e in enumerate(events):
            arr[b, :len(e[key])] = e[key]
        out[key] = torch.from_numpy(arr)
    for b, e in enumerate(events):
        valid[b, :len(e["x"])] = True
    out["valid"] = torch.from_numpy(valid)
    if "reg_valid" in out:
        out["reg_valid"] = out["reg_valid"] & out["valid"]
    if device is not None:
        out = {k: v.to(device, non_blocking=True) for k, v in out.items()}
    out["mask"] = AttentionMask(out["valid"])
    if data.blocks is not None:
        from ..locality.blocks import batch_blocks

        out["mask"].extra["blocks"] = batch_blocks([data.blocks[int(i)] for i in indices], n_max)
    out["event_ids"] = data.event_ids[np.asarray(indices, np.int64)]
    return out
