"""Helix propagation through cylinders and disks in a uniform Bz, with Highland multiple scattering.

Vectorised over particles: each step moves every live particle to its next surface (the smallest
positive path length over all surfaces whose bounds contain the crossing), records the crossing if
the surface is sensitive, and deflects the direction by two Gaussian angles of width theta0 (Highland,
PDG eq. 33.15, thickness x/X0 / |cos alpha|). Energy loss is neglected (<~3 % for hadrons above
0.3 GeV, REFERENCE 4.7). A particle stops when no surface lies ahead (it left the detector) or when it
has turned by more than `max_turn` radians in the transverse plane (a looper heading back in).

Helix (REFERENCE 4.5): rho = sign(q) R, R[mm] = pT / (0.2998e-3 B |q|); phi(s) = phi0 - s / rho;
x = x0 + rho (sin phi0 - sin phi(s)); y = y0 + rho (cos phi(s) - cos phi0); z = z0 + s pz / pT.
"""

from __future__ import annotations

import numpy as np

from .geometry import Layers

C_LIGHT = 0.299792458  # GeV / (T m)
_EPS = 1e-3  # mm: a surface closer than this along the path is the one the particle is standing on


def helix_radius_mm(pt, q, bz: float) -> np.ndarray:
    return np.asarray(pt, float) / (C_LIGHT * 1e-3 * abs(bz) * np.abs(q))


def highland(p, mass, q, x_x0) -> np.ndarray:
    """theta0 (rad) of the multiple-scattering angle distribution, per projected plane."""
    e = np.sqrt(p ** 2 + mass ** 2)
    beta = p / e
    x = np.maximum(x_x0, 1e-12)
    return 0.0136 / (beta * p) * np.abs(q) * np.sqrt(x) * (1 + 0.038 * np.log(x * q ** 2 / beta ** 2))


def _helix_at(x0, y0, z0, phi0, rho, tan_l, s):
    phi = phi0 - s / rho
    return x0 + rho * (np.sin(phi0) - np.sin(phi)), y0 + rho * (np.cos(phi) - np.cos(phi0)), z0 + s * tan_l, phi


def _cylinder_paths(x0, y0, phi0, rho, radius):
    """The two transverse path lengths (N, S) to the circles of `radius` (inf where none)."""
    r_abs = np.abs(rho)[:, None]
    xc = (x0 + rho * np.sin(phi0))[:, None]
    yc = (y0 - rho * np.cos(phi0))[:, None]
    d = np.hypot(xc, yc)
    d = np.maximum(d, 1e-9)
    l = (r_abs ** 2 - radius[None, :] ** 2 + d ** 2) / (2 * d)  # along the centre -> origin line
    h2 = r_abs ** 2 - l ** 2
    ok = h2 >= 0
    h = np.sqrt(np.where(ok, h2, 0.0))
    ux, uy = -xc / d, -yc / d
    out = []
    for sgn in (1.0, -1.0):
        px = xc + l * ux - sgn * h * uy
        py = yc + l * uy + sgn * h * ux
        # Angle phi of the point on the helix: (x - xc, y - yc) = rho (-sin phi, cos phi).
        rr = rho[:, None]
        phi = np.arctan2(-(px - xc) / rr, (py - yc) / rr)
        dphi = np.mod((phi0[:, None] - phi) * np.sign(rr), 2 * np.pi)
        s = dphi * r_abs
        s = np.where(s < _EPS, s + 2 * np.pi * r_abs, s)  # the current point: next crossing is a full turn on
        out.append(np.where(ok, s, np.inf))
    return out


def propagate(state: dict, layers: Layers, rng: np.random.Generator, *, bz: float = 2.0,
              multiple_scattering: bool = True, max_turn: float = np.pi, max_steps: int = 200) -> dict:
    """Propagate particles; returns the sensitive crossings, ordered by particle then path.

    `state` has arrays x, y, z (mm), px, py, pz (GeV), q, mass (GeV). The result has `particle`
    (index into the input), `surface` (row of `layers`), true position tx, ty, tz and momentum
    tpx, tpy, tpz at the crossing (before scattering in that surface).
    """
    n = len(state["x"])
    idx = np.flatnonzero((np.asarray(state["q"]) != 0) & (np.hypot(state["px"], state["py"]) > 0))
    x, y, z = (np.asarray(state[k], float)[idx] for k in ("x", "y", "z"))
    px, py, pz = (np.asarray(state[k], float)[idx] for k in ("px", "py", "pz"))
    q = np.asarray(state["q"], float)[idx]
    mass = np.asarray(state["mass"], float)[idx]
    turned = np.zeros(len(idx))
    cyl = np.flatnonzero(layers.kind == 0)
    disk = np.flatnonzero(layers.kind == 1)
    rec = {k: [] for k in ("particle", "surface", "step", "tx", "ty", "tz", "tpx", "tpy", "tpz")}
    for step in range(max_steps):
        if len(idx) == 0:
            break
        pt = np.hypot(px, py)
        rho = np.sign(q) * np.sign(bz) * helix_radius_mm(pt, q, bz)
        phi0 = np.arctan2(py, px)
        tan_l = pz / pt
        # Candidate path lengths to every surface, infinite where there is no valid crossing.
        cands, surfs = [], []
        if len(cyl):
            for s in _cylinder_paths(x, y, phi0, rho, layers.pos[cyl]):
                zc = z[:, None] + s * tan_l[:, None]
                s = np.where((zc >= layers.lo[cyl]) & (zc <= layers.hi[cyl]), s, np.inf)
                cands.append(s)
                surfs.append(cyl)
        if len(disk):
            with np.errstate(divide="ignore", invalid="ignore"):
                s = (layers.pos[disk][None, :] - z[:, None]) / tan_l[:, None]
            s = np.where(np.isfinite(s) & (s > _EPS), s, np.inf)
            sx, sy, _, _ = _helix_at(x[:, None], y[:, None], z[:, None], phi0[:, None], rho[:, None],
                                     tan_l[:, None], np.where(np.isfinite(s), s, 0.0))
            r = np.hypot(sx, sy)
            s = np.where((r >= layers.lo[disk]) & (r <= layers.hi[disk]), s, np.inf)
            cands.append(s)
            surfs.append(disk)
        allc = np.concatenate(cands, axis=1)
        alls = np.concatenate(surfs)
        best = np.argmin(allc, axis=1)
        s_best = allc[np.arange(len(idx)), best]
        surf = alls[best]
        turn = turned + s_best / np.abs(rho)
        live = np.isfinite(s_best) & (turn <= max_turn)
        if not live.all():
            idx, x, y, z, px, py, pz, q, mass, rho, phi0, tan_l, pt = (
                v[live] for v in (idx, x, y, z, px, py, pz, q, mass, rho, phi0, tan_l, pt))
            s_best, surf, turn = s_best[live], surf[live], turn[live]
        x, y, z, phi = _helix_at(x, y, z, phi0, rho, tan_l, s_best)
        px, py = pt * np.cos(phi), pt * np.sin(phi)
        turned = turn
        sens = layers.sensitive[surf]
        if sens.any():
            for k, v in (("particle", idx), ("surface", surf), ("tx", x), ("ty", y), ("tz", z), ("tpx", px),
                         ("tpy", py), ("tpz", pz)):
                rec[k].append(v[sens])
            rec["step"].append(np.full(int(sens.sum()), step))
        if multiple_scattering and len(idx):
            px, py, pz = _scatter(rng, layers, surf, x, y, px, py, pz, q, mass)
    out = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in rec.items()}
    order = np.lexsort((out["step"], out["particle"])) if len(out["particle"]) else np.zeros(0, np.int64)
    out = {k: v[order] for k, v in out.items()}
    out["particle"] = out["particle"].astype(np.int64)
    out["surface"] = out["surface"].astype(np.int64)
    out["n_input"] = n
    return out


def _scatter(rng, layers: Layers, surf, x, y, px, py, pz, q, mass):
    """Deflect the momenta by two independent Gaussian angles (Highland width) perpendicular to them."""
    p = np.sqrt(px ** 2 + py ** 2 + pz ** 2)
    dx, dy, dz = px / p, py / p, pz / p
    rho = np.maximum(np.hypot(x, y), 1e-9)
    cyl = layers.kind[surf] == 0
    cos_a = np.where(cyl, np.abs(dx * x / rho + dy * y / rho), np.abs(dz))
    thickness = layers.x_x0[surf] / np.maximum(cos_a, 1e-3)
    theta0 = highland(p, mass, q, thickness)
    # Orthonormal basis perpendicular to the direction: e1 = d x z (normalised), e2 = d x e1.
    e1x, e1y = dy, -dx
    norm = np.maximum(np.hypot(e1x, e1y), 1e-12)
    e1x, e1y = e1x / norm, e1y / norm
    e2x, e2y, e2z = -dz * e1y, dz * e1x, dx * e1y - dy * e1x
    a1, a2 = rng.normal(0.0, 1.0, (2, len(p))) * theta0
    nx, ny, nz = dx + a1 * e1x + a2 * e2x, dy + a1 * e1y + a2 * e2y, dz + a2 * e2z
    nn = np.sqrt(nx ** 2 + ny ** 2 + nz ** 2)
    return p * nx / nn, p * ny / nn, p * nz / nn
