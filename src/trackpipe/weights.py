"""TrackML hit weights, phase 1 (accuracy) and phase 2 (throughput), vectorised.

Definition (trackml-library `weights.py`, see REFERENCE.md 2.1), per truth hit of a particle:

* w_pt: linear in the particle's initial pT between (0.5 GeV, 0.2) and (3 GeV, 1.0), flat 0.2 down to
  0.05 GeV, 0 below 0.05 GeV, 1 above 3 GeV;
* w_order: the proposal [10, 8, 6, 5, 3, 3, 3, 5, 6] stretched over the particle's number of truth rows
  n (clipped at 20) and normalised to sum 1, indexed by the hit's rank along |tz - vz| (ties averaged,
  then truncated); particles with fewer than 4 truth rows get 0, ranks >= 20 get 0;
* noise (particle_id 0) gets 0; phase 2 also gives 0 to secondaries (generation != 0);
* w = w_pt * w_order, normalised to sum 1 over the event.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DataError

ORDER_PROPOSAL = np.array([10.0, 8.0, 6.0, 5.0, 3.0, 3.0, 3.0, 5.0, 6.0])
ORDER_MIN_HITS = 4
ORDER_MAX_HITS = 20


def _order_matrix() -> np.ndarray:
    """(n_hits, i_hit) -> order weight, rows normalised to 1; rows below the minimum are zero."""
    m = np.zeros((ORDER_MAX_HITS + 1, ORDER_MAX_HITS))
    k = len(ORDER_PROPOSAL)
    for n in range(ORDER_MIN_HITS, ORDER_MAX_HITS + 1):
        supports = np.arange(k) * (n - 1) / (k - 1)
        w = np.interp(np.arange(n), supports, ORDER_PROPOSAL)
        m[n, :n] = w / w.sum()
    return m


ORDER_MATRIX = _order_matrix()


def weight_pt(pt) -> np.ndarray:
    return np.interp(np.asarray(pt, dtype=np.float64), [0.05, 0.5, 3.0], [0.2, 0.2, 1.0], left=0.0, right=1.0)


def particle_generation(particle_id) -> np.ndarray:
    """Generation field (bits 24-35) of a TrackML particle id; 0 means primary."""
    return (np.asarray(particle_id, dtype=np.int64) >> 24) & 0xFFF


def hit_weights(truth: pd.DataFrame, particles: pd.DataFrame, *, phase: int = 1, normalise: bool = True) -> np.ndarray:
    """Weights for the rows of `truth` (columns particle_id, tz) given `particles` (particle_id, vz, px, py).

    Returned in the order of `truth`'s rows. `normalise=False` returns w_pt * w_order unnormalised.
    """
    if phase not in (1, 2):
        raise ValueError(f"phase must be 1 or 2, not {phase!r}")
    pid = truth["particle_id"].to_numpy(np.int64)
    tz = truth["tz"].to_numpy(np.float64)
    ppid = particles["particle_id"].to_numpy(np.int64)
    order = np.argsort(ppid, kind="stable")
    sorted_pid = ppid[order]
    pos = np.searchsorted(sorted_pid, pid)
    pos = np.minimum(pos, max(len(sorted_pid) - 1, 0))
    found = (len(sorted_pid) > 0) & (sorted_pid[pos] == pid) if len(sorted_pid) else np.zeros(len(pid), bool)
    real = pid != 0
    missing = real & ~found
    if missing.any():
        raise DataError(f"{int(missing.sum())} truth hit(s) of particles not in the particles table (first: "
                        f"{int(pid[missing][0])})", column="particle_id")
    idx = order[pos]
    pt = np.hypot(particles["px"].to_numpy(np.float64), particles["py"].to_numpy(np.float64))
    w_pt = np.where(real, weight_pt(pt)[idx], 0.0)
    vz = particles["vz"].to_numpy(np.float64)[idx]
    dz = np.abs(tz - vz)

    # Number of truth rows per particle and the rank of each hit along |tz - vz| (average ties, truncated).
    df = pd.DataFrame({"pid": pid, "dz": dz})
    n = df.groupby("pid")["dz"].transform("size").to_numpy()
    ihit = (df.groupby("pid")["dz"].rank(method="average").to_numpy() - 1.0).astype(np.int64)
    n_clipped = np.minimum(n, ORDER_MAX_HITS)
    usable = real & (n >= ORDER_MIN_HITS) & (ihit < ORDER_MAX_HITS)
    w_order = np.zeros(len(pid))
    w_order[usable] = ORDER_MATRIX[n_clipped[usable], ihit[usable]]
    w = w_pt * w_order
    if phase == 2:
        w[particle_generation(pid) != 0] = 0.0
    if normalise:
        total = w.sum()
        if total > 0:
            w = w / total
    return w
