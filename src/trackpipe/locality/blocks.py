"""Block tables for cluster-restricted attention, built directly from the cluster-sorted token order.

Tokens: one per (hit, cluster) membership, sorted by cluster id (then hit index). **Overlap rule**: a hit in
several clusters (overlapping windows) is duplicated, one token per cluster; its attention output is the
mean over its tokens (``cluster_blocked_attention`` / ``flex_cluster_attention`` do the pooling). With
disjoint clusters tokens are a permutation of the hits and nothing is pooled.

Two tables are derived from the sorted order, both in O(tokens), never from an N² mask:

* **flex** (``kv_num_blocks``, ``kv_indices``): tokens padded to a multiple of ``block_size`` (padding tokens
  get a cluster id of their own); with sorted ids, query block i and key block j share a cluster iff their
  cluster-id ranges overlap, and the overlapping key blocks of a query block are one contiguous run found
  with two ``searchsorted`` calls. ``block_mask()`` turns them into a FlexAttention ``BlockMask`` with
  ``BlockMask.from_kv_blocks`` (the mask_mod compares cluster ids inside partially covered blocks).
* **buckets** for the cluster-blocked SDPA path: clusters grouped by padded length (powers of two, at
  least ``min_bucket``); per bucket a (n_clusters, L) table of token positions, -1 for padding.

``cached_blocks`` stores the tables per event as ``.npz`` (atomic write, sha256 of the arrays inside) and
reuses them across epochs; a file that fails to load or to verify is rebuilt (``on_corrupt="rebuild"``,
with a warning) or raises ``DataError`` (``on_corrupt="raise"``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..io.atomic import atomic_path

log = logging.getLogger(__name__)

BLOCK_DEFAULTS = {"block_size": 128, "min_bucket": 8}
CACHE_VERSION = 1
_ARRAYS = ("token_hit", "token_cluster", "kv_num_blocks", "kv_indices", "bucket_length", "bucket_rows",
           "bucket_tokens", "hit_multiplicity")


@dataclass
class ClusterBlocks:
    n_hits: int
    n_clusters: int
    block_size: int
    token_hit: np.ndarray        # (M,) hit index of each token, tokens sorted by cluster
    token_cluster: np.ndarray    # (M,) cluster id of each token, non-decreasing
    kv_num_blocks: np.ndarray    # (n_blocks,) active key blocks per query block
    kv_indices: np.ndarray       # (n_blocks, n_blocks) active key blocks first, then zeros
    bucket_length: np.ndarray    # (n_buckets,) padded cluster length L of each bucket
    bucket_rows: np.ndarray      # (n_buckets,) clusters in each bucket
    bucket_tokens: np.ndarray    # concatenated (rows·L) token positions per bucket, -1 = padding
    hit_multiplicity: np.ndarray  # (N,) tokens per hit (1 unless clusters overlap)
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # see device_cache

    @property
    def n_tokens(self) -> int:
        return len(self.token_hit)

    @property
    def n_blocks(self) -> int:
        return len(self.kv_num_blocks)

    def buckets(self):
        """Yield (L, table of shape (rows, L)) per bucket."""
        start = 0
        for L, rows in zip(self.bucket_length.tolist(), self.bucket_rows.tolist()):
            yield L, self.bucket_tokens[start:start + rows * L].reshape(rows, L)
            start += rows * L

    def bucket_slots(self, device) -> list:
        """Per bucket: (hit index of each padded slot (rows, L) int64, slot validity (rows, L) bool) as
        tensors on ``device``; padding slots point at hit 0. Built once per device (``device_cache``)."""
        import torch

        def build():
            token_hit = torch.as_tensor(self.token_hit, device=device)
            out = []
            for _, table in self.buckets():
                t = torch.as_tensor(table, device=device)
                valid = t >= 0
                out.append((torch.where(valid, token_hit[t.clamp(min=0)], 0), valid))
            return out

        return self.device_cache("bucket_slots", device, build)

    def block_sparsity(self) -> float:
        return 1.0 - float(self.kv_num_blocks.sum()) / max(self.n_blocks**2, 1)

    def device_cache(self, name: str, device, build):
        """``build()`` once per (name, device), kept with the tables: the index tensors and BlockMasks the
        attention, loss and feature code derive from them (an explicit cache, dropped with the tables)."""
        key = (name, str(device))
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]

    def block_mask(self, device="cpu", *, bucket: bool = False):
        """FlexAttention BlockMask over the padded token sequence.

        Length ``n_blocks·block_size``, or with ``bucket=True`` the bucket of ``locality.flex``
        (``bucket_blocks(n_blocks)`` blocks) so that compiled flex sees a few lengths only; the extra
        query blocks get no key blocks (the kernel skips them) and no real block visits them.
        """
        import torch
        from torch.nn.attention.flex_attention import BlockMask

        from .flex import bucket_blocks

        bs = self.block_size
        nb = bucket_blocks(self.n_blocks) if bucket else self.n_blocks
        pad = nb * bs - self.n_tokens
        tc = np.concatenate([self.token_cluster, np.full(pad, self.n_clusters, np.int64)])
        cid = torch.as_tensor(tc, device=device)
        kv_num = np.zeros(nb, np.int32)
        kv_num[:self.n_blocks] = self.kv_num_blocks
        kv_idx = np.zeros((nb, nb), np.int32)
        kv_idx[:self.n_blocks, :self.n_blocks] = self.kv_indices

        def same_cluster(b, h, q_idx, kv_idx):
            return cid[q_idx] == cid[kv_idx]

        return BlockMask.from_kv_blocks(
            torch.as_tensor(kv_num, device=device)[None, None], torch.as_tensor(kv_idx, device=device)[None, None],
            BLOCK_SIZE=bs, mask_mod=same_cluster, seq_lengths=(nb * bs, nb * bs))


def build_blocks(hit_index, cluster_id, n_hits: int, params: dict | None = None) -> ClusterBlocks:
    """Block tables from (hit, cluster) memberships; every hit must be in at least one cluster."""
    p = {**BLOCK_DEFAULTS, **(params or {})}
    unknown = set(p) - set(BLOCK_DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown blocks keys: {sorted(unknown)}; allowed: {sorted(BLOCK_DEFAULTS)}")
    bs, min_bucket = int(p["block_size"]), int(p["min_bucket"])
    hit_index = np.asarray(hit_index, dtype=np.int64)
    cluster_id = np.asarray(cluster_id, dtype=np.int64)
    if hit_index.shape != cluster_id.shape or hit_index.ndim != 1:
        raise DataError("hit_index and cluster_id must be 1-D arrays of the same length", column="cluster_id")
    if len(hit_index) and (hit_index.min() < 0 or hit_index.max() >= n_hits or cluster_id.min() < 0):
        raise DataError("membership index out of range", column="hit_index")
    mult = np.bincount(hit_index, minlength=n_hits)
    if n_hits and mult.min() == 0:
        raise DataError(f"{int((mult == 0).sum())} hits are in no cluster", column="cluster_id")
    order = np.lexsort((hit_index, cluster_id))
    token_hit, token_cluster = hit_index[order], cluster_id[order]
    # renumber clusters 0..C-1 in sorted order (ids may have gaps)
    if len(token_cluster):
        token_cluster = np.cumsum(np.r_[0, np.diff(token_cluster) != 0]).astype(np.int64)
    n_clusters = int(token_cluster[-1] + 1) if len(token_cluster) else 0
    M = len(token_hit)
    n_blocks = max(-(-M // bs), 1)
    tc = np.concatenate([token_cluster, np.full(n_blocks * bs - M, n_clusters, np.int64)])
    lo, hi = tc[::bs], tc[bs - 1::bs]
    first = np.searchsorted(hi, lo, side="left")   # first key block whose range reaches lo_i
    last = np.searchsorted(lo, hi, side="right")   # one past the last key block starting <= hi_i
    kv_num = (last - first).astype(np.int32)
    cols = np.arange(n_blocks)[None, :]
    kv_idx = np.where(cols < kv_num[:, None], first[:, None] + cols, 0).astype(np.int32)
    # buckets of clusters by padded length
    sizes = np.bincount(token_cluster, minlength=n_clusters)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    L = np.maximum(min_bucket, 2 ** np.ceil(np.log2(np.maximum(sizes, 1))).astype(np.int64))
    lengths, rows, tables = [], [], []
    for length in np.unique(L):
        cl = np.flatnonzero(L == length)
        pos = starts[cl][:, None] + np.arange(length)[None, :]
        table = np.where(np.arange(length)[None, :] < sizes[cl][:, None], pos, -1)
        lengths.append(int(length))
        rows.append(len(cl))
        tables.append(table.ravel())
    return ClusterBlocks(
        n_hits=int(n_hits), n_clusters=n_clusters, block_size=bs, token_hit=token_hit, token_cluster=token_cluster,
        kv_num_blocks=kv_num, kv_indices=kv_idx, bucket_length=np.asarray(lengths, np.int64),
        bucket_rows=np.asarray(rows, np.int64),
        bucket_tokens=np.concatenate(tables).astype(np.int64) if tables else np.zeros(0, np.int64),
        hit_multiplicity=mult.astype(np.int64))


def batch_blocks(event_blocks: list, n_max: int):
    """Tables of a batch flattened to B·n_max hits (one event: its own tables, unchanged): event b's hit i
    is position b·n_max + i, and every padding position is a single-hit cluster of its own."""
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


def _digest(arrays: dict, meta: dict) -> str:
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in _ARRAYS:
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_blocks(path, blocks: ClusterBlocks, key: str) -> None:
    arrays = {name: getattr(blocks, name) for name in _ARRAYS}
    meta = {"version": CACHE_VERSION, "key": key, "n_hits": blocks.n_hits, "n_clusters": blocks.n_clusters,
            "block_size": blocks.block_size}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), digest=np.array(_digest(arrays, meta)), **arrays)


def load_blocks(path, key: str) -> ClusterBlocks:
    """Load and verify a cached table; raises DataError if the file is damaged or for another key."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {name: z[name] for name in _ARRAYS}
            digest = str(z["digest"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise DataError(f"unreadable block-table cache ({type(e).__name__}: {e})", file=path) from None
    if meta.get("version") != CACHE_VERSION or meta.get("key") != key:
        raise DataError("block-table cache was written for other data or parameters", file=path)
    if _digest(arrays, meta) != digest:
        raise DataError("block-table cache fails its checksum", file=path)
    return ClusterBlocks(n_hits=meta["n_hits"], n_clusters=meta["n_clusters"], block_size=meta["block_size"], **arrays)


def cache_key(event_id, hits, algorithm: str, params: dict) -> str:
    """Key of an event's tables: the event's hit ids and coordinates plus every parameter that shapes them."""
    h = hashlib.sha256(json.dumps({"event": int(event_id), "algorithm": algorithm, "params": params},
                                  sort_keys=True, default=str).encode())
    for c in ("hit_id", "x", "y", "z"):
        if c in hits:
            h.update(np.ascontiguousarray(np.asarray(hits[c])).tobytes())
    return h.hexdigest()[:20]


def cached_blocks(cache_dir, event_id, key: str, build, *, on_corrupt: str = "rebuild") -> tuple[ClusterBlocks, bool]:
    """(tables, loaded_from_cache). ``build()`` is called only when no valid cache file exists."""
    if on_corrupt not in ("rebuild", "raise"):
        raise ConfigError("on_corrupt must be 'rebuild' or 'raise'")
    path = Path(cache_dir) / f"event{int(event_id):09d}-{key}.blocks.npz"
    if path.exists():
        try:
            return load_blocks(path, key), True
        except DataError as e:
            if on_corrupt == "raise":
                raise
            log.warning("%s; rebuilding it", e)
    blocks = build()
    save_blocks(path, blocks, key)
    return blocks, False
