"""True tracks as hit sequences ordered by distance from the origin, and the seed length.

Shared by EncDec's teacher forcing (`models.encdec`), its truth seeds and next-hit accuracy
(`tracking.seeding`, `tracking.encdec_decode`) and the U-Net's interpolated training points (`voxel`).
"""

from __future__ import annotations

import numpy as np

#: Hits of a track seed (EncDec decodes from the first three hits of a track).
SEED_HITS = 3


def teacher_tracks(event_index: np.ndarray, particle_id: np.ndarray, distance: np.ndarray, max_length: int,
                   min_length: int = SEED_HITS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hits of every true track ordered by distance from the origin (vectorised over all tracks).

    Inputs are flat per-hit arrays (position in them = hit index); noise (particle 0) is skipped.
    Returns (track's event index (T,), hit indices (T, L) padded with -1, track lengths (T,)); tracks
    shorter than `min_length` are dropped, longer ones truncated to `max_length`.
    """
    hits = np.flatnonzero(particle_id != 0)
    order = hits[np.lexsort((distance[hits], particle_id[hits], event_index[hits]))]
    ev, pid = event_index[order], particle_id[order]
    new = np.r_[True, (ev[1:] != ev[:-1]) | (pid[1:] != pid[:-1])]
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    pos = np.arange(len(order)) - starts[group]
    sizes = np.diff(np.r_[starts, len(order)])
    keep_group = sizes >= min_length
    keep = keep_group[group] & (pos < max_length)
    renum = np.cumsum(keep_group) - 1
    T = int(keep_group.sum())
    lengths = np.minimum(sizes[keep_group], max_length)
    seq = np.full((T, int(lengths.max()) if T else 0), -1, np.int64)
    seq[renum[group[keep]], pos[keep]] = order[keep]
    return ev[starts][keep_group], seq, lengths
