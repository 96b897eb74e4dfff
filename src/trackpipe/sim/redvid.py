"""A REDVID-like toy detector and track simulator ([P1] §2.1), vectorised over batches of events.

Detector (config key ``detector``, lengths in mm): sub-detector types as in REDVID,

* ``pixel``  - a filled cylinder, modelled as ``layers`` concentric sensitive shells at radii
  radius * i / layers (i = 1..layers), |z| <= half_length;
* ``barrel`` - cylindrical shells (open caps) at ``radii``, |z| <= half_length;
* ``short_strip``, ``long_strip`` - flat disks at ``z`` (mirrored to -z when ``both_sides``),
  r_min <= r <= r_max.

Each sensitive element gets a detector-wide ``sub_detector_id`` (1, 2, ... in the order pixel,
barrel, short strips, long strips; disks ordered by z), stored as ``layer_id``; ``volume_id`` is the
sub-detector type code of `trackpipe.io.redvid`. The default geometry is closed (the barrel is as long
as the last disk is far), so every track inside the eta range leaves through the last barrel shell or
the last disk (REDVID's "last layer hit guarantee"); central tracks leave 6 hits, at most 9.

Tracks (one collision per event at the origin, optionally smeared by ``vertex_sigma``), REDVID
parameters r = r0 + a t, theta = theta0 + d t, z = z0 + b t evaluated in a *track frame* whose axis
is parallel to z and placed so that t = 0 is the vertex:

* ``helical_expanding``: r0 = 0, frame axis through the vertex; an Archimedean spiral leaving the
  vertex in direction theta0; a = radial_coeff (mm per rad of turning, log-uniform in
  ``radial_coeff``), d = +-1 (the charge sign), b = a sinh(eta) so that z / r = sinh(eta) exactly;
* ``helical`` (uniform): a = 0, r0 = helix radius R (log-uniform in ``helix_radius``), the frame axis
  at vertex - R (cos theta0, sin theta0): a circle through the vertex, the helix of a charged
  particle in a solenoid; d = +-1, b = R sinh(eta);
* ``linear``: start (r_0, theta_0, z_0) = the vertex in cylindrical coordinates, unit direction
  (r_d, theta_d, z_d) = (1 / cosh eta, azimuth, tanh eta); the point is vertex + t (r_d cos theta_d,
  r_d sin theta_d, z_d).

eta is flat in ``eta``; azimuths are uniform. Helical tracks therefore turn by 0.2-1.8 rad before
the last barrel shell with the defaults: clearly curved, yet they leave the detector before looping.
Hits are the crossings with the sensitive elements (found on a grid in t, refined by bisection),
smeared by ``smear_rphi`` across and ``smear_long`` along the element (z on shells, r on disks), so
measured points stay on their element. Tracks with fewer than ``min_hits`` hits, or missing the last
layer when ``last_layer_hit``, are redrawn. ``noise_fraction`` adds that fraction of noise hits (per
event, Poisson) spread uniformly over the sensitive area; noise has particle_id 0 and weight 0.
Hit ids are a random permutation within the event, so their order says nothing about the tracks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..io.redvid import HELICAL_PARAMS, LINEAR_PARAMS, SUB_DETECTOR_CODES, TRACK_TYPES
from ..io.store import Event
from ..config import as_range, merge_section
from .geometry import Surfaces

DEFAULT_DETECTOR = {
    "pixel": {"present": False, "layers": 3, "radius": 45.0, "half_length": 400.0},
    "barrel": {"present": True, "radii": [75.0, 150.0, 225.0, 300.0, 375.0, 450.0], "half_length": 1150.0},
    "short_strip": {"present": True, "z": [700.0, 850.0], "r_min": 30.0, "r_max": 450.0, "both_sides": True},
    "long_strip": {"present": True, "z": [1000.0, 1150.0], "r_min": 30.0, "r_max": 450.0, "both_sides": True},
}

DEFAULT_SIM = {
    "detector": DEFAULT_DETECTOR,
    "track_types": ["helical_expanding"],  # drawn with equal probability per track
    "n_tracks": [10, 50],                  # per event, uniform integer in [min, max]
    "eta": [-3.0, 3.0],
    "radial_coeff": [250.0, 2000.0],       # helical_expanding a, mm/rad (log-uniform)
    "helix_radius": [300.0, 3000.0],       # helical R, mm (log-uniform)
    "vertex_sigma": [0.0, 0.0, 0.0],       # Gaussian vertex smearing x, y, z (mm)
    "smear_rphi": 0.05,                    # mm, across the element
    "smear_long": 0.5,                     # mm, along the element (z on shells, r on disks)
    "noise_fraction": 0.0,
    "min_hits": 4,
    "last_layer_hit": True,
    "batch_events": 256,                   # events simulated together (also the seeding unit)
}

_TYPE_CODE = {name: i for i, name in enumerate(TRACK_TYPES)}  # linear 0, helical 1, helical_expanding 2
_GRID = 48
_BISECT = 40


@dataclass(frozen=True)
class ToyDetector(Surfaces):
    """Sensitive elements as parallel arrays: cylinders (kind 0) at radius pos, disks (kind 1) at z pos."""

    kind: np.ndarray
    pos: np.ndarray
    lo: np.ndarray   # z range of a cylinder, r range of a disk
    hi: np.ndarray
    volume_id: np.ndarray
    layer_id: np.ndarray
    outer: np.ndarray  # the "last layers": outermost cylinder, outermost disk on each side
    r_env: float
    z_env: float



def build_detector(detector: dict | None = None) -> ToyDetector:
    cfg = merge_section(DEFAULT_DETECTOR, detector, "redvid.detector")
    rows = []  # (kind, pos, lo, hi, type)
    px = cfg["pixel"]
    if px["present"]:
        n = int(px["layers"])
        if n < 1:
            raise ConfigError("redvid.detector.pixel.layers must be >= 1")
        for i in range(1, n + 1):
            rows.append((0, float(px["radius"]) * i / n, -float(px["half_length"]), float(px["half_length"]), "pixel"))
    br = cfg["barrel"]
    if br["present"]:
        for r in sorted(float(v) for v in br["radii"]):
            rows.append((0, r, -float(br["half_length"]), float(br["half_length"]), "barrel"))
    for name in ("short_strip", "long_strip"):
        d = cfg[name]
        if not d["present"]:
            continue
        zs = [float(z) for z in d["z"]]
        if d["both_sides"]:
            zs = zs + [-z for z in zs]
        for z in sorted(zs):
            rows.append((1, z, float(d["r_min"]), float(d["r_max"]), name))
    if not rows:
        raise ConfigError("redvid.detector: no sub-detector is present")
    kind = np.array([r[0] for r in rows], np.int8)
    pos = np.array([r[1] for r in rows])
    lo = np.array([r[2] for r in rows])
    hi = np.array([r[3] for r in rows])
    if np.any(pos[kind == 0] <= 0) or np.any(hi <= lo):
        raise ConfigError("redvid.detector: radii must be positive and every extent non-empty")
    outer = np.zeros(len(rows), bool)
    if (kind == 0).any():
        outer[np.flatnonzero(kind == 0)[np.argmax(pos[kind == 0])]] = True
    for side in (-1, 1):
        sel = np.flatnonzero((kind == 1) & (np.sign(pos) == side))
        if len(sel):
            outer[sel[np.argmax(np.abs(pos[sel]))]] = True
    r_env = max(np.max(pos[kind == 0], initial=0.0), np.max(hi[kind == 1], initial=0.0))
    z_env = max(np.max(hi[kind == 0], initial=0.0), np.max(np.abs(pos[kind == 1]), initial=0.0))
    return ToyDetector(kind, pos, lo, hi, np.array([SUB_DETECTOR_CODES[r[4]] for r in rows], np.int32),
                       np.arange(1, len(rows) + 1, dtype=np.int32), outer, float(r_env), float(z_env))


def _check_config(cfg: dict) -> dict:
    types = cfg["track_types"]
    if isinstance(types, str):
        types = [types]
    unknown = sorted(set(types) - set(TRACK_TYPES))
    if not types or unknown:
        raise ConfigError(f"redvid.track_types: unknown {unknown or 'empty list'}; allowed {list(TRACK_TYPES)}")
    if "linear" in types and len(set(types)) > 1:
        # The store holds one parameter set per dataset: linear and helical names cannot be mixed.
        raise ConfigError("redvid.track_types: linear tracks cannot be mixed with helical ones in one dataset")
    sig = cfg["vertex_sigma"]
    if len(sig) != 3 or min(sig) < 0:
        raise ConfigError("redvid.vertex_sigma: expected three non-negative numbers [x, y, z]")
    out = dict(cfg, track_types=list(types))
    out["n_tracks"] = as_range(cfg["n_tracks"], "redvid.n_tracks", integer=True)
    if out["n_tracks"][0] < 1:
        raise ConfigError("redvid.n_tracks: at least one track per event")
    for key in ("eta", "radial_coeff", "helix_radius"):
        out[key] = as_range(cfg[key], f"redvid.{key}")
    if out["radial_coeff"][0] <= 0 or out["helix_radius"][0] <= 0:
        raise ConfigError("redvid.radial_coeff and redvid.helix_radius must be positive")
    if int(cfg["batch_events"]) < 1 or float(cfg["noise_fraction"]) < 0:
        raise ConfigError("redvid.batch_events must be >= 1 and redvid.noise_fraction >= 0")
    return out


def _log_uniform(rng, lo, hi, n):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


def draw_tracks(rng: np.random.Generator, n: int, cfg: dict) -> dict:
    """REDVID parameters of `n` tracks, plus the frame quantities used to evaluate them."""
    types = np.array([_TYPE_CODE[t] for t in cfg["track_types"]])[rng.integers(0, len(cfg["track_types"]), n)]
    vertex = rng.normal(0.0, 1.0, (n, 3)) * np.asarray(cfg["vertex_sigma"], float) + 0.0  # no -0.0
    eta = rng.uniform(*cfg["eta"], n)
    azimuth = rng.uniform(0.0, 2 * np.pi, n)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    radius = _log_uniform(rng, *cfg["helix_radius"], n)
    coeff = _log_uniform(rng, *cfg["radial_coeff"], n)
    lin, uni = types == 0, types == 1
    # Unified frame: point(t) = c + (r0 + a t) e(theta0 + d t), z = vz + b t; linear = (r0 0, a r_d, d 0).
    r0 = np.where(uni, radius, 0.0)
    a = np.where(lin, 1 / np.cosh(eta), np.where(uni, 0.0, coeff))
    d = np.where(lin, 0.0, sign)
    b = np.where(lin, np.tanh(eta), np.where(uni, radius, coeff) * np.sinh(eta))
    cx = vertex[:, 0] - r0 * np.cos(azimuth)
    cy = vertex[:, 1] - r0 * np.sin(azimuth)
    params = np.where(lin[:, None],
                      np.stack([np.hypot(vertex[:, 0], vertex[:, 1]), np.arctan2(vertex[:, 1], vertex[:, 0]),
                                vertex[:, 2], a, azimuth, b], axis=1),
                      np.stack([r0, azimuth, vertex[:, 2], a, d, b], axis=1))
    return {"type": types, "vertex": vertex, "params": params,
            "frame": np.stack([cx, cy, vertex[:, 2], r0, azimuth, a, d, b], axis=1)}


def track_points(frame: np.ndarray, t: np.ndarray):
    """x, y, z of tracks with frame rows (cx, cy, vz, r0, theta0, a, d, b) at parameter t (broadcast)."""
    cx, cy, vz, r0, th0, a, d, b = (frame[..., i] for i in range(8))
    if t.ndim == 2:
        cx, cy, vz, r0, th0, a, d, b = (v[:, None] for v in (cx, cy, vz, r0, th0, a, d, b))
    r = r0 + a * t
    th = th0 + d * t
    return cx + r * np.cos(th), cy + r * np.sin(th), vz + b * t


def _t_max(frame: np.ndarray, det: ToyDetector) -> np.ndarray:
    """A parameter range that takes every track beyond the detector (or half a turn for tight helices)."""
    cx, cy, vz, r0, _, a, d, b = frame.T
    offset = np.hypot(cx, cy) + r0
    with np.errstate(divide="ignore", invalid="ignore"):
        t_r = np.where(a > 0, (det.r_env + offset) / np.where(a > 0, a, 1.0), np.inf)
        half_turn = np.pi / np.where(d != 0, np.abs(d), 1.0)
        circle = np.where(r0 > 0, 2 * np.arcsin(np.minimum((det.r_env + offset) / (2 * np.where(r0 > 0, r0, 1.0)), 1.0))
                          / np.where(d != 0, np.abs(d), 1.0), np.inf)
        t_r = np.minimum(t_r, np.where(a > 0, np.inf, np.minimum(circle, half_turn)))
        t_z = np.where(b != 0, (det.z_env + np.abs(vz)) / np.abs(np.where(b != 0, b, 1.0)), np.inf)
    return np.minimum(t_r, t_z) * 1.02


def _surface_value(det: ToyDetector, surf: np.ndarray, x, y, z):
    return np.where(det.kind[surf] == 0, np.hypot(x, y), z) - det.pos[surf]


def intersect(frame: np.ndarray, det: ToyDetector):
    """All crossings of tracks with the sensitive elements: (track index, element index, t, x, y, z).

    Sign changes of (r - R) or (z - z_d) on a grid in t bracket each crossing; bisection refines it.
    """
    t_max = _t_max(frame, det)
    grid = np.linspace(0.0, 1.0, _GRID)[None, :] * t_max[:, None]
    x, y, z = track_points(frame, grid)
    cyl = det.kind == 0
    rho = np.hypot(x, y)
    f = np.where(cyl[None, None, :], rho[:, :, None], z[:, :, None]) - det.pos[None, None, :]
    change = np.signbit(f[:, :-1, :]) != np.signbit(f[:, 1:, :])
    trk, step, surf = np.nonzero(change)
    lo, hi = grid[trk, step], grid[trk, step + 1]
    f_lo = f[trk, step, surf]
    fr = frame[trk]
    for _ in range(_BISECT):
        mid = 0.5 * (lo + hi)
        fm = _surface_value(det, surf, *track_points(fr, mid))
        same = np.signbit(fm) == np.signbit(f_lo)
        lo = np.where(same, mid, lo)
        f_lo = np.where(same, fm, f_lo)
        hi = np.where(same, hi, mid)
    t = 0.5 * (lo + hi)
    px, py, pz = track_points(fr, t)
    # Exact placement on the element, then the bounds of the element.
    along = np.where(det.kind[surf] == 0, pz, np.hypot(px, py))
    inside = (along >= det.lo[surf]) & (along <= det.hi[surf])
    return trk[inside], surf[inside], t[inside], px[inside], py[inside], pz[inside]


def _smear(rng, det: ToyDetector, surf, x, y, z, sig_rphi: float, sig_long: float):
    """Gaussian smearing in the element's own coordinates, so the point stays on its element."""
    rho = np.hypot(x, y)
    phi = np.arctan2(y, x)
    cyl = det.kind[surf] == 0
    d_rphi = rng.normal(0.0, 1.0, len(x)) * sig_rphi
    d_long = rng.normal(0.0, 1.0, len(x)) * sig_long
    rho_s = np.where(cyl, det.pos[surf], np.maximum(rho + d_long, 1e-6))
    phi_s = phi + d_rphi / rho_s
    z_s = np.where(cyl, z + d_long, det.pos[surf])
    return rho_s * np.cos(phi_s), rho_s * np.sin(phi_s), z_s


def _noise(rng, det: ToyDetector, n: int):
    """`n` hits spread uniformly over the sensitive area."""
    p = det.area / det.area.sum()
    surf = rng.choice(len(det), size=n, p=p)
    phi = rng.uniform(0, 2 * np.pi, n)
    u = rng.random(n)
    cyl = det.kind[surf] == 0
    lo, hi = det.lo[surf], det.hi[surf]
    rho = np.where(cyl, det.pos[surf], np.sqrt(lo ** 2 + u * (hi ** 2 - lo ** 2)))
    z = np.where(cyl, lo + u * (hi - lo), det.pos[surf])
    return surf, rho * np.cos(phi), rho * np.sin(phi), z


def _accepted_tracks(rng, n: int, cfg: dict, det: ToyDetector):
    """Draw tracks until `n` satisfy the reconstructability rules; returns tracks and their hits."""
    kept_tracks, kept_hits = [], []
    need, rounds = n, 0
    while need > 0:
        rounds += 1
        if rounds > 50:
            raise ConfigError("redvid: the track parameters almost never give reconstructable tracks "
                              f"(min_hits={cfg['min_hits']}, last_layer_hit={cfg['last_layer_hit']}); "
                              "check the eta range and the detector")
        tr = draw_tracks(rng, need, cfg)
        trk, surf, t, x, y, z = intersect(tr["frame"], det)
        nhits = np.bincount(trk, minlength=need)
        ok = nhits >= int(cfg["min_hits"])
        if cfg["last_layer_hit"]:
            ok &= np.bincount(trk, weights=det.outer[surf], minlength=need) > 0
        idx = np.flatnonzero(ok)
        remap = np.full(need, -1)
        remap[idx] = np.arange(len(idx))
        keep = ok[trk]
        kept_tracks.append({k: v[idx] for k, v in tr.items()})
        kept_hits.append((remap[trk[keep]], surf[keep], t[keep], x[keep], y[keep], z[keep]))
        need -= len(idx)
    # Concatenate rounds, renumbering the track index of each round after the previous ones.
    offsets = np.cumsum([0] + [len(k["type"]) for k in kept_tracks])
    tracks = {k: np.concatenate([kt[k] for kt in kept_tracks]) for k in kept_tracks[0]}
    hits = [np.concatenate([h[0] + off for h, off in zip(kept_hits, offsets)])]
    hits += [np.concatenate([h[i] for h in kept_hits]) for i in range(1, 6)]
    return tracks, hits


def simulate_batch(rng: np.random.Generator, event_ids: np.ndarray, cfg: dict, det: ToyDetector):
    """Hits and particles of a batch of events as two flat tables (sorted by event, then id)."""
    n_ev = len(event_ids)
    lo, hi = cfg["n_tracks"]
    n_tracks = rng.integers(lo, hi + 1, n_ev)
    total = int(n_tracks.sum())
    tracks, (trk, surf, t, x, y, z) = _accepted_tracks(rng, total, cfg, det)
    ev_of_track = np.repeat(np.arange(n_ev), n_tracks)
    first_track = np.concatenate([[0], np.cumsum(n_tracks)[:-1]])
    track_id = np.arange(total) - first_track[ev_of_track]
    x, y, z = _smear(rng, det, surf, x, y, z, float(cfg["smear_rphi"]), float(cfg["smear_long"]))
    ev_hit = ev_of_track[trk]
    pid = track_id[trk] + 1
    n_track_hits = np.bincount(ev_hit, minlength=n_ev)
    n_noise = rng.poisson(float(cfg["noise_fraction"]) * n_track_hits) if cfg["noise_fraction"] > 0 \
        else np.zeros(n_ev, np.int64)
    if n_noise.sum():
        nsurf, nx, ny, nz = _noise(rng, det, int(n_noise.sum()))
        ev_hit = np.concatenate([ev_hit, np.repeat(np.arange(n_ev), n_noise)])
        pid = np.concatenate([pid, np.zeros(int(n_noise.sum()), np.int64)])
        surf = np.concatenate([surf, nsurf])
        x, y, z = np.concatenate([x, nx]), np.concatenate([y, ny]), np.concatenate([z, nz])
    # Hit ids: a random permutation within each event (1-based).
    order = np.lexsort((rng.random(len(ev_hit)), ev_hit))
    n_per_event = np.bincount(ev_hit, minlength=n_ev)
    start = np.concatenate([[0], np.cumsum(n_per_event)[:-1]])
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order)) - start[ev_hit[order]]
    hits = pd.DataFrame({
        "event_id": event_ids[ev_hit].astype(np.int64),
        "hit_id": rank + 1,
        "x": x.astype(np.float32), "y": y.astype(np.float32), "z": z.astype(np.float32),
        "volume_id": det.volume_id[surf], "layer_id": det.layer_id[surf],
        "module_id": np.zeros(len(surf), np.int32),
        "particle_id": pid.astype(np.int64),
        "weight": (pid > 0).astype(np.float32),
    }).sort_values(["event_id", "hit_id"], kind="stable", ignore_index=True)
    names = LINEAR_PARAMS if cfg["track_types"] == ["linear"] else HELICAL_PARAMS
    vertex = tracks["vertex"].astype(np.float32)
    zeros = np.zeros(total, np.float32)
    particles = pd.DataFrame({
        "event_id": event_ids[ev_of_track].astype(np.int64),
        "particle_id": (track_id + 1).astype(np.int64),
        "vx": vertex[:, 0], "vy": vertex[:, 1], "vz": vertex[:, 2],
        "px": zeros, "py": zeros, "pz": zeros,
        "q": np.zeros(total, np.int32),
        "nhits": np.bincount(trk, minlength=total).astype(np.int32),
        "track_type": pd.array(np.asarray(TRACK_TYPES, dtype=object)[tracks["type"]], dtype="string[pyarrow]"),
        **{name: tracks["params"][:, i] for i, name in enumerate(names)},
    })
    return hits, particles


def split_events(hits: pd.DataFrame, particles: pd.DataFrame):
    """Per-event `Event`s from flat tables sorted by event_id."""
    h_ev = hits["event_id"].to_numpy()
    p_ev = particles["event_id"].to_numpy()
    ids = np.unique(h_ev)
    h_cut = np.searchsorted(h_ev, ids, side="left"), np.searchsorted(h_ev, ids, side="right")
    p_cut = np.searchsorted(p_ev, ids, side="left"), np.searchsorted(p_ev, ids, side="right")
    for i, eid in enumerate(ids):
        yield Event(int(eid), hits.iloc[h_cut[0][i]:h_cut[1][i]].reset_index(drop=True),
                    particles.iloc[p_cut[0][i]:p_cut[1][i]].reset_index(drop=True))


def simulate_redvid(config: dict | None, event_indices, seed: int):
    """Yield the `Event`s with the given global indices (event_id = index).

    Events are simulated in batches of ``batch_events`` consecutive indices, batch k seeded with
    (seed, k): an event depends only on the seed and its index, so shards of the index range
    reproduce exactly the events of an unsharded run.
    """
    cfg = _check_config(merge_section(DEFAULT_SIM, config, "redvid"))
    det = build_detector(cfg["detector"])
    idx = np.asarray(sorted(set(int(i) for i in event_indices)), np.int64)
    size = int(cfg["batch_events"])
    for batch in np.unique(idx // size):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(batch)]))
        batch_ids = np.arange(batch * size, (batch + 1) * size, dtype=np.int64)
        hits, particles = simulate_batch(rng, batch_ids, cfg, det)
        wanted = np.isin(batch_ids, idx)
        if not wanted.all():
            keep = batch_ids[wanted]
            hits = hits[hits.event_id.isin(keep)].reset_index(drop=True)
            particles = particles[particles.event_id.isin(keep)].reset_index(drop=True)
        yield from split_events(hits, particles)
