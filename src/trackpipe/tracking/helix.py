"""Helix consistency of hit sets, for track formation: is a set of hits one charged particle from the beam line?

A track from the beam line in a solenoid is, in the pixel volume (pT > ~0.5 GeV, r < 200 mm, so that
the bending angle r·kappa/2 stays below ~0.1 rad), two straight lines to high accuracy:

    transverse:  phi(r) = phi0 + c·r        (c = kappa/2; the small-angle circle through the origin)
    longitudinal: z(r)  = z0 + t·r           (t = cot theta)

Both fits are linear least squares, so a hit set is summarised by additive sums (`helix_sums`): joining
two tracks adds their sums, and the residual sums of squares (`fit_rss`, in mm²: the transverse
residual r·dphi, weights r²) follow in O(1). Two hits always fit (two parameters per view); three or
more test the hypothesis. Adding hits never lowers a least-squares residual, so "RSS <= tolerance" is
monotone: a join that fails stays failed after either side grows, which keeps the vectorised greedy of
`tracking.embedding.layer_constrained_components` equal to the sequential one.

Why (issue 15): in a crowded barrel window a pT > 0.9 GeV hit's most similar embedding neighbour is
mostly another particle's hit (the kNN edges of a 40-minute model are 10-20 % true), and greedy building
on similarity alone pairs each hit with a wrong partner first. A pair is only accepted when some third
candidate hit makes a helix with it (`triplet_supported`), and a join only when the joined track stays
a helix; the embedding proposes and orders the candidates, the helix test vetoes.

Tolerances come from the truth of validation events (`calibrate_tolerance`: a quantile of the residuals
of true particles), so they follow the data's resolution, material and alignment instead of a constant.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError

#: Columns of `helix_sums`: transverse (weights w = r², residual r·dphi in mm; phi relative to a
#: reference angle) then longitudinal.
SUM_COLUMNS = ("w", "w_r", "w_r2", "w_phi", "w_r_phi", "w_phi2", "n", "r", "r2", "z", "r_z", "z2")
#: Triplets scored at once by `triplet_supported` (each row holds ~20 float64 temporaries).
TRIPLET_CHUNK = 1 << 20


def hit_geometry(xyz) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(r, phi, z) in mm and rad of hits (n, 3) x, y, z in mm."""
    xyz = np.asarray(xyz, np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise DataError(f"hit coordinates must be (hits, 3) x, y, z, got shape {xyz.shape}", column="x, y, z")
    return np.hypot(xyz[:, 0], xyz[:, 1]), np.arctan2(xyz[:, 1], xyz[:, 0]), xyz[:, 2]


def helix_sums(xyz) -> tuple[np.ndarray, np.ndarray]:
    """(per-hit sums (n, 12) in the order of `SUM_COLUMNS`, phi (n,)): the least-squares sums of each
    hit alone, its phi measured from itself (so 0: small angles keep the sums exact to ~1e-12 mm²
    where absolute phi near pi would lose six digits). A set's sums measure phi from one reference
    angle, its root hit's: sums of other hits or sets join after `rephased` by `branch_shift`."""
    r, phi, z = hit_geometry(xyz)
    return _hit_sums(r, z), phi


def _hit_sums(r: np.ndarray, z: np.ndarray) -> np.ndarray:
    w = r * r
    one, zero = np.ones_like(r), np.zeros_like(r)
    return np.stack([w, w * r, w * r * r, zero, zero, zero, one, r, r * r, z, r * z, z * z], axis=1)


def rephased(sums: np.ndarray, shift) -> np.ndarray:
    """Sums (m, 12) of hit sets with every (relative) phi moved by ``shift`` (m,): from the set's own
    reference angle to another one (`branch_shift`)."""
    out = np.array(sums, np.float64, copy=True)
    d = np.asarray(shift, np.float64)
    out[:, 5] = sums[:, 5] + 2 * d * sums[:, 3] + d * d * sums[:, 0]
    out[:, 3] = sums[:, 3] + d * sums[:, 0]
    out[:, 4] = sums[:, 4] + d * sums[:, 1]
    return out


def branch_shift(phi_from, phi_to) -> np.ndarray:
    """The shift of angles measured from the reference ``phi_from`` to angles measured from ``phi_to``:
    phi_from - phi_to wrapped to [-pi, pi) (hits of one track are close in phi, whichever side of pi)."""
    phi_from, phi_to = np.asarray(phi_from, np.float64), np.asarray(phi_to, np.float64)
    return np.remainder(phi_from - phi_to + np.pi, 2 * np.pi) - np.pi


def _line_rss(s0, s1, s2, t0, t1, t2):
    det = s0 * s2 - s1 * s1
    safe = np.where(np.abs(det) > 1e-12 * np.maximum(s0 * s2, 1e-300), det, np.inf)  # one radius: no slope
    a = (s2 * t0 - s1 * t1) / safe
    b = (s0 * t1 - s1 * t0) / safe
    flat = ~np.isfinite(safe)  # all hits at one radius: the best fit is the weighted mean
    a = np.where(flat, t0 / np.maximum(s0, 1e-300), a)
    return np.maximum(t2 - a * t0 - b * t1, 0.0)


def fit_rss(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(transverse RSS, longitudinal RSS), both in mm², of hit sets given by their sums (m, 12)."""
    s = np.asarray(sums, np.float64)
    return _line_rss(*s[:, 0:6].T), _line_rss(*s[:, 6:12].T)


def check_tolerance(tolerance) -> tuple[float, float] | None:
    """A ``tracking.helix_tolerance`` value: None (off) or [transverse, longitudinal] RSS in mm², > 0."""
    if tolerance is None:
        return None
    try:
        t, z = (float(v) for v in tolerance)
    except (TypeError, ValueError):
        raise ConfigError(f"tracking.helix_tolerance must be null or [transverse, z] in mm², got {tolerance!r}") from None
    if not (t > 0 and z > 0):
        raise ConfigError(f"tracking.helix_tolerance values must be > 0, got {tolerance!r}")
    return t, z


def triplet_rss(a, b, c, r, phi, z) -> tuple[np.ndarray, np.ndarray]:
    """(transverse, z) RSS in mm² of the hit triplets (a, b, c), from per-hit r, phi, z: the fits of
    `fit_rss`, written out for three hits (8 gathers per triplet instead of 36 sums), with r, phi and z
    measured from hit a (least-squares residuals do not change under such shifts; small numbers keep
    them exact)."""
    ra, rb, rc = r[a], r[b], r[c]
    ub, uc = branch_shift(phi[b], phi[a]), branch_shift(phi[c], phi[a])
    wa, wb, wc = ra * ra, rb * rb, rc * rc
    xb, xc = rb - ra, rc - ra                      # r - r_a (x_a = 0, u_a = 0)
    s0 = wa + wb + wc
    s1 = wb * xb + wc * xc
    s2 = wb * xb * xb + wc * xc * xc
    t0 = wb * ub + wc * uc
    t1 = wb * xb * ub + wc * xc * uc
    t2 = wb * ub * ub + wc * uc * uc
    zb, zc = z[b] - z[a], z[c] - z[a]
    return (_line_rss(s0, s1, s2, t0, t1, t2),
            _line_rss(np.full_like(xb, 3.0), xb + xc, xb * xb + xc * xc, zb + zc, xb * zb + xc * zc, zb * zb + zc * zc))


def triplet_supported(src, dst, neighbours_ptr, neighbours, r, phi, z, layer, tolerance) -> np.ndarray:
    """Per candidate edge (src[e], dst[e]): is there a third hit c among the candidate neighbours of
    either end (CSR ``neighbours_ptr``, ``neighbours``), on a layer of its own, such that {a, b, c} fits
    a helix within ``tolerance`` (transverse, z RSS in mm²; `triplet_rss`)? r, phi, z: per hit."""
    tol_t, tol_z = tolerance
    a_all, b_all = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    ok = np.zeros(len(a_all), bool)
    degree = np.diff(neighbours_ptr)
    for end in (a_all, b_all):
        todo = np.flatnonzero(~ok)
        # edges in groups whose expansion (edge x candidate third hits) stays near TRIPLET_CHUNK rows
        cum = np.cumsum(degree[end[todo]])
        cuts = np.searchsorted(cum, np.arange(TRIPLET_CHUNK, cum[-1] if len(cum) else 0, TRIPLET_CHUNK))
        for group in np.split(todo, cuts):
            rep = degree[end[group]]
            e = np.repeat(group, rep)
            offset = np.arange(len(e)) - np.repeat(np.cumsum(rep) - rep, rep)
            c = neighbours[np.repeat(neighbours_ptr[end[group]], rep) + offset]
            a, b = a_all[e], b_all[e]
            keep = (c != a) & (c != b) & (layer[c] != layer[a]) & (layer[c] != layer[b])
            e, a, b, c = e[keep], a[keep], b[keep], c[keep]
            rss_t, rss_z = triplet_rss(a, b, c, r, phi, z)
            ok[e[(rss_t <= tol_t) & (rss_z <= tol_z)]] = True
    return ok


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """np.unique of an integer array by one sort. numpy 2.x's plain np.unique hashes first, which for the
    millions of edge keys of a <mu> = 200 event took 0.9-2.4 s against 0.2 s for the sort (measured)."""
    keys = np.sort(np.asarray(keys))
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def neighbour_lists(n_hits: int, src, dst) -> tuple[np.ndarray, np.ndarray]:
    """CSR (ptr, neighbours) of the directed candidate edges: each hit's candidate mates."""
    order = np.argsort(np.asarray(src, np.int64), kind="stable")
    ptr = np.r_[0, np.cumsum(np.bincount(np.asarray(src, np.int64), minlength=n_hits))]
    return ptr, np.asarray(dst, np.int64)[order]


def calibrate_tolerance(events, quantile: float, min_pt: float = 0.9) -> tuple[float, float] | None:
    """The ``quantile`` of the transverse and longitudinal RSS of the true particles (pT > min_pt GeV,
    hits on >= 3 layers, one hit per layer: the first of each layer) of validation events, each
    (xyz (n, 3), particle_id (n,), pt (n,), layer (n,)); None without such particles."""
    if not 0 < quantile <= 1:
        raise ConfigError(f"tracking.helix_quantile must be in (0, 1], got {quantile}")
    rss_t, rss_z = [], []
    for xyz, pid, pt, layer in events:
        pid, pt, layer = (np.asarray(v) for v in (pid, pt, layer))
        sums, phi = helix_sums(xyz)
        sel = np.flatnonzero((pid > 0) & (pt > min_pt))
        if not len(sel):
            continue
        # one hit per (particle, layer), grouped by particle (ids are 64-bit: no combined integer key)
        sel = sel[np.lexsort((layer[sel], pid[sel]))]
        first = np.r_[True, (pid[sel][1:] != pid[sel][:-1]) | (layer[sel][1:] != layer[sel][:-1])]
        sel = sel[first]
        particles, start, count = np.unique(pid[sel], return_index=True, return_counts=True)
        many = count >= 3
        if not many.any():
            continue
        group = np.repeat(np.arange(len(particles)), count)
        ref = phi[sel[start]][group]
        shifted = rephased(sums[sel], branch_shift(phi[sel], ref))
        total = np.zeros((len(particles), sums.shape[1]))
        np.add.at(total, group, shifted)
        t, z = fit_rss(total[many])
        rss_t.append(t)
        rss_z.append(z)
    if not rss_t:
        return None
    t, z = np.concatenate(rss_t), np.concatenate(rss_z)
    return float(max(np.quantile(t, quantile), 1e-6)), float(max(np.quantile(z, quantile), 1e-6))


class HelixTest:
    """The helix test of one event: per-hit sums and phi of its hits and the (transverse, z) tolerance."""

    def __init__(self, xyz, tolerance):
        self.tolerance = check_tolerance(tolerance)
        if self.tolerance is None:
            raise ConfigError("a helix test needs a tolerance [transverse, z] in mm²")
        self.r, self.phi, self.z = hit_geometry(xyz)
        self.sums = _hit_sums(self.r, self.z)

    @property
    def n_hits(self) -> int:
        return len(self.phi)

    def greedy_args(self) -> tuple:
        """The ``helix`` argument of `tracking.embedding.layer_constrained_components`."""
        return self.sums, self.phi, self.tolerance

    def supported(self, src, dst, layer) -> np.ndarray:
        """`triplet_supported` of the directed candidate edges, the third hit among either end's candidates.

        A pair listed several times (a hit in several windows has candidates from each, and both
        directions) is scored once: the answer depends only on the two hits and their candidate sets."""
        n = self.n_hits
        src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
        directed = _sorted_unique(src * n + dst)
        ptr, mates = neighbour_lists(n, directed // n, directed % n)
        pair, back = np.unique(np.minimum(src, dst) * n + np.maximum(src, dst), return_inverse=True)
        ok = triplet_supported(pair // n, pair % n, ptr, mates, self.r, self.phi, self.z, np.asarray(layer, np.int64),
                               self.tolerance)
        return ok[back.reshape(-1)]
