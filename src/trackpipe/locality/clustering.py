"""Clustering of projected hits: four algorithms behind one signature, phi wrap-around handled.

``cluster_points(points, algorithm, params, period=None) -> Memberships``

``points`` is an (n, 2) array of surface coordinates (u, v) in mm; ``period`` is the period of u (2·pi·R
on the barrel cylinder, None on the endcap planes). The result lists (point, cluster) memberships: every
point is in at least one cluster (points an algorithm leaves unclustered become single-point clusters, so
that they still attend to themselves), and only ``grid_window`` with stride < width puts a point in several
(overlapping) clusters. Cluster ids are 0..n_clusters-1.

Algorithms (slides seed 001; the authors' iterative window algorithm is not published, the version here is
this project's reading of the name) and their parameters (all lengths in mm on the surface):

* ``dbscan``: sklearn DBSCAN on (u, v·v_scale). Keys ``eps``, ``min_samples``, ``v_scale``.
* ``iterative_window``: u-strips of width ``width_u`` opened at the first unassigned hit (so strips start at
  the data, not on a fixed grid), then inside each strip v-windows of width ``width_v`` opened the same way,
  then ``n_iter`` rounds that move every hit to the nearest window centre of its strip (window boundaries
  drift into gaps between hit groups).
* ``density_peaks`` (Rodriguez & Laio 2014): local density rho = neighbours within ``d_c`` on
  (u, v·v_scale); delta = distance to the nearest denser hit among the ``k_neighbors`` nearest; centres
  have rho >= ``rho_min`` and delta >= ``delta_min`` (or no denser hit nearby); every other hit joins the
  cluster of its nearest denser hit.
* ``grid_window``: fixed windows of ``width_u`` × ``width_v`` placed every width·(1 - overlap) along each
  axis (``overlap_u``, ``overlap_v`` in [0, 1); 0 = a plain grid, 0.5 = every hit in 2 windows along that
  axis, so any group narrower than half a window lies wholly inside one window).

Wrap-around: grid windows use window indices modulo the number of windows around the circle; the iterative
windows start their sweep in the largest empty phi gap; dbscan and density peaks cluster the hits plus a
copy of those within a margin of the seam shifted by -period, then merge every cluster of a hit with the
cluster of its copy (connected components), so a group straddling phi = ±pi ends up in one cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..errors import ConfigError, DataError

DEFAULTS = {
    "dbscan": {"eps": 4.0, "min_samples": 2, "v_scale": 0.25},
    "iterative_window": {"width_u": 12.0, "width_v": 80.0, "n_iter": 2},
    "density_peaks": {"d_c": 4.0, "v_scale": 0.25, "rho_min": 3, "delta_min": 8.0, "k_neighbors": 32},
    "grid_window": {"width_u": 8.0, "width_v": 200.0, "overlap_u": 0.5, "overlap_v": 0.0},
}
ALGORITHMS = tuple(DEFAULTS)


@dataclass
class Memberships:
    """(point, cluster) pairs; ``index[i]`` is in cluster ``cluster[i]``."""

    index: np.ndarray    # int64
    cluster: np.ndarray  # int64, 0..n_clusters-1
    n_points: int
    n_clusters: int

    def sizes(self) -> np.ndarray:
        return np.bincount(self.cluster, minlength=self.n_clusters)


def algorithm_params(algorithm: str, params: dict | None) -> dict:
    if algorithm not in DEFAULTS:
        raise ConfigError(f"unknown clustering algorithm {algorithm!r}; choose from {list(ALGORITHMS)}")
    params = dict(params or {})
    unknown = set(params) - set(DEFAULTS[algorithm])
    if unknown:
        raise ConfigError(f"unknown {algorithm} keys: {sorted(unknown)}; allowed: {sorted(DEFAULTS[algorithm])}")
    return {**DEFAULTS[algorithm], **params}


def cluster_points(points, algorithm: str, params: dict | None = None, *, period: float | None = None) -> Memberships:
    p = algorithm_params(algorithm, params)
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise DataError(f"points must have shape (n, 2), got {pts.shape}", column="u, v")
    if not np.all(np.isfinite(pts)):
        raise DataError("non-finite projected coordinate", column="u, v")
    n = len(pts)
    if n == 0:
        return Memberships(np.zeros(0, np.int64), np.zeros(0, np.int64), 0, 0)
    if period is not None:
        pts = pts.copy()
        pts[:, 0] = (pts[:, 0] + period / 2) % period - period / 2
    if algorithm == "grid_window":
        idx, cl = _grid_window(pts, p, period)
        return _memberships(idx, cl, n)
    if algorithm == "iterative_window":
        labels = _iterative_window(pts, p, period)
    elif algorithm == "dbscan":
        labels = _wrapped(_dbscan, pts, p, period, margin=2.0 * p["eps"])
    else:
        labels = _wrapped(_density_peaks, pts, p, period, margin=3.0 * max(p["d_c"], p["delta_min"]))
    return _memberships(np.arange(n, dtype=np.int64), labels, n)


def _memberships(index: np.ndarray, labels: np.ndarray, n: int) -> Memberships:
    """Consecutive cluster ids; unclustered points (label < 0) become single-point clusters."""
    index = np.asarray(index, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64).copy()
    noise = labels < 0
    labels[noise] = labels.max(initial=-1) + 1 + np.arange(noise.sum())
    _, cluster = np.unique(labels, return_inverse=True)
    cluster = cluster.astype(np.int64)
    covered = np.zeros(n, bool)
    covered[index] = True
    if not covered.all():  # e.g. a grid window algorithm never leaves a point out; keep the invariant anyway
        missing = np.flatnonzero(~covered)
        index = np.concatenate([index, missing])
        cluster = np.concatenate([cluster, cluster.max(initial=-1) + 1 + np.arange(len(missing))])
    return Memberships(index, cluster, n, int(cluster.max(initial=-1) + 1))


def _wrapped(fn, pts: np.ndarray, p: dict, period: float | None, margin: float) -> np.ndarray:
    """Run a single-label algorithm on a periodic u by clustering copies across the seam and merging."""
    if period is None:
        return fn(pts, p)
    margin = min(margin, period / 4)
    n = len(pts)
    near = np.flatnonzero(pts[:, 0] > period / 2 - margin)
    copies = pts[near].copy()
    copies[:, 0] -= period
    labels = fn(np.concatenate([pts, copies]), p).astype(np.int64)
    noise = labels < 0
    labels[noise] = labels.max(initial=-1) + 1 + np.arange(noise.sum())
    # link a hit's cluster with its copy's only where the copy sees a complete neighbourhood (inner half)
    link = pts[near, 0] > period / 2 - margin / 2
    a, b = labels[near[link]], labels[n + np.flatnonzero(link)]
    m = int(labels.max()) + 1
    graph = sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(m, m))
    _, comp = connected_components(graph, directed=False)
    out = comp[labels[:n]]
    # keep DBSCAN's "noise" meaning for hits alone in their component
    sizes = np.bincount(out, minlength=comp.max() + 1)
    out[sizes[out] == 1] = -1
    return out


def _scaled(pts: np.ndarray, v_scale: float) -> np.ndarray:
    return np.column_stack([pts[:, 0], pts[:, 1] * float(v_scale)])


def _dbscan(pts: np.ndarray, p: dict) -> np.ndarray:
    from sklearn.cluster import DBSCAN

    return DBSCAN(eps=float(p["eps"]), min_samples=int(p["min_samples"])).fit_predict(_scaled(pts, p["v_scale"]))


def _density_peaks(pts: np.ndarray, p: dict) -> np.ndarray:
    xy = _scaled(pts, p["v_scale"])
    n = len(xy)
    tree = cKDTree(xy)
    rho = tree.query_ball_point(xy, r=float(p["d_c"]), return_length=True).astype(np.int64)
    key = rho * n + (n - 1 - np.arange(n))  # strict order: density, ties broken by index
    k = min(int(p["k_neighbors"]) + 1, n)
    dist, nb = tree.query(xy, k=k)
    dist, nb = dist.reshape(n, k), nb.reshape(n, k)
    denser = key[nb] > key[:, None]
    has = denser.any(axis=1)
    first = np.argmax(denser, axis=1)
    rows = np.arange(n)
    parent = np.where(has, nb[rows, first], rows)
    delta = np.where(has, dist[rows, first], np.inf)
    centre = ~has | ((rho >= int(p["rho_min"])) & (delta >= float(p["delta_min"])))
    parent[centre] = rows[centre]
    # pointer jumping: keys strictly increase along parent links, so this reaches the centres
    while True:
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    return parent


def _greedy_windows(sorted_vals: np.ndarray, width: float) -> np.ndarray:
    """Window number of each sorted value: windows of `width` opened at the first value not yet covered."""
    starts = []
    i, n = 0, len(sorted_vals)
    while i < n:  # one iteration per window (not per hit)
        starts.append(i)
        i = int(np.searchsorted(sorted_vals, sorted_vals[i] + width, side="left"))
    win = np.zeros(n, dtype=np.int64)
    win[np.asarray(starts[1:], dtype=np.int64)] = 1
    return np.cumsum(win)


def _iterative_window(pts: np.ndarray, p: dict, period: float | None) -> np.ndarray:
    u, v = pts[:, 0].copy(), pts[:, 1]
    if period is not None and len(u) > 1:
        # start the sweep in the largest empty phi gap, so no window has to straddle the seam
        s = np.sort(u)
        gaps = np.diff(np.concatenate([s, [s[0] + period]]))
        g = int(np.argmax(gaps))
        start = s[(g + 1) % len(s)]
        u = (u - start) % period
    order_u = np.argsort(u, kind="stable")
    strip = np.empty(len(u), dtype=np.int64)
    strip[order_u] = _greedy_windows(u[order_u], float(p["width_u"]))
    # inside each strip: sort by (strip, v) and open v-windows per strip
    order = np.lexsort((v, strip))
    s_sorted, v_sorted = strip[order], v[order]
    bounds = np.flatnonzero(np.diff(s_sorted)) + 1
    win_sorted = np.empty(len(u), dtype=np.int64)
    offset = 0
    for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(u)]])):
        w = _greedy_windows(v_sorted[lo:hi], float(p["width_v"]))
        win_sorted[lo:hi] = w + offset
        offset += int(w[-1]) + 1
    for _ in range(int(p["n_iter"])):
        # move each hit to the nearest window centre of its strip (1-D k-means step along v)
        counts = np.bincount(win_sorted, minlength=offset)
        centre = np.bincount(win_sorted, weights=v_sorted, minlength=offset) / np.maximum(counts, 1)
        live = np.flatnonzero(counts > 0)
        c_strip = np.zeros(offset, dtype=np.int64)
        c_strip[win_sorted] = s_sorted
        key_c = np.lexsort((centre[live], c_strip[live]))
        live = live[key_c]
        # hits and centres ordered by (strip, v): the nearest centre in the strip is a neighbour in this order
        cs, cv = c_strip[live], centre[live]
        pos = _searchsorted_pairs(cs, cv, s_sorted, v_sorted)
        lo_i = np.clip(pos - 1, 0, len(live) - 1)
        hi_i = np.clip(pos, 0, len(live) - 1)
        lo_ok = cs[lo_i] == s_sorted
        hi_ok = cs[hi_i] == s_sorted
        d_lo = np.where(lo_ok, np.abs(v_sorted - cv[lo_i]), np.inf)
        d_hi = np.where(hi_ok, np.abs(v_sorted - cv[hi_i]), np.inf)
        win_sorted = live[np.where(d_hi < d_lo, hi_i, lo_i)]
    labels = np.empty(len(u), dtype=np.int64)
    labels[order] = win_sorted
    return labels


def _searchsorted_pairs(keys_a, vals_a, keys_b, vals_b) -> np.ndarray:
    """searchsorted for (key, value) pairs sorted lexicographically (keys integer, values float)."""
    lo = min(vals_a.min(initial=0.0), vals_b.min(initial=0.0))
    span = max(vals_a.max(initial=0.0), vals_b.max(initial=0.0)) - lo + 1.0
    return np.searchsorted(keys_a * span + (vals_a - lo), keys_b * span + (vals_b - lo), side="left")


def _grid_window(pts: np.ndarray, p: dict, period: float | None) -> tuple[np.ndarray, np.ndarray]:
    wu, wv = float(p["width_u"]), float(p["width_v"])
    if not (0 <= p["overlap_u"] < 1 and 0 <= p["overlap_v"] < 1 and wu > 0 and wv > 0):
        raise ConfigError("grid_window needs widths > 0 and overlaps in [0, 1)")
    su, sv = wu * (1 - float(p["overlap_u"])), wv * (1 - float(p["overlap_v"]))
    u, v = pts[:, 0], pts[:, 1]
    if period is not None:
        n_u = max(int(np.ceil(period / su)), 1)
        su = period / n_u  # strides that tile the circle exactly
        u0 = -period / 2
    else:
        n_u = None
        u0 = u.min()
    v0 = v.min()
    # window k covers [k·s, k·s + w): a hit is in windows floor((x - w)/s) < k <= floor(x/s)
    ku_hi = np.floor((u - u0) / su).astype(np.int64)
    kv_hi = np.floor((v - v0) / sv).astype(np.int64)
    m_u, m_v = int(np.ceil(wu / su)), int(np.ceil(wv / sv))
    idx, ku, kv = [], [], []
    n = len(u)
    for du in range(m_u):
        for dv in range(m_v):
            a, b = ku_hi - du, kv_hi - dv
            ok = ((u - u0) < a * su + wu) & ((v - v0) < b * sv + wv) & (b >= 0)
            if n_u is None:
                ok &= a >= 0
            else:
                a = a % n_u
            idx.append(np.flatnonzero(ok))
            ku.append(a[ok])
            kv.append(b[ok])
    idx, ku, kv = np.concatenate(idx), np.concatenate(ku), np.concatenate(kv)
    window = ku * (int(kv.max(initial=0)) + 1) + kv
    return idx.astype(np.int64), window
