"""Full TrackML-like events: generator -> helix + multiple scattering -> smeared hits with truth.

Output is an `Event` in the store schema: hits with measured x, y, z, volume/layer/module ids, truth
tx..tz and tpx..tpz, particle_id (TrackML bit layout: vertex id = collision + 1 in bits 52-63, primary
id = particle number within the collision + 1 in bits 36-51, generation 0) and TrackML phase-1 weights;
particles with vertex, initial momentum, charge, nhits and PDG id (charged particles that left no hit
are kept, with nhits 0, as in TrackML). Noise hits (particle_id 0, weight 0) are Poisson with mean
``noise_fraction[part]`` x the number of particle hits in that part (pixel = volumes 7-9, strip = the
rest), spread uniformly over the part's sensitive area.

Config keys (``DEFAULT_TRACKML``): ``generator`` (see `generators.DEFAULT_GENERATOR`), ``volumes``
(simulate only these, e.g. [7, 8, 9] for pixel events), ``bz`` (T), ``multiple_scattering``,
``max_turn`` (rad; stop loopers after this transverse turning), ``noise_fraction``,
``detectors_csv`` (optional path: real module planes instead of the idealised segmentation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..io.store import Event
from ..weights import hit_weights
from .generators import DEFAULT_GENERATOR, make_source
from .geometry import PIXEL_VOLUMES, VOLUMES, Layers, check_volumes, layers_from_detectors_csv, module_ids, trackml_layers
from ..config import merge_section
from .propagate import propagate

DEFAULT_TRACKML = {
    "generator": DEFAULT_GENERATOR,
    "volumes": [7, 8, 9, 12, 13, 14, 16, 17, 18],
    "bz": 2.0,
    "multiple_scattering": True,
    "max_turn": 3.1416,
    # Noise hits per particle hit, per detector part; the real event in ../shared/data/trackml has 0.058
    # (pixel) and 0.33 (strips), i.e. ~19 k noise hits in a full event as in [P1] (18.6-20.5 k).
    "noise_fraction": {"pixel": 0.06, "strip": 0.33},
    "detectors_csv": None,
}

VERTEX_SHIFT, PRIMARY_SHIFT = 52, 36
STRIP_VOLUMES = tuple(v for v in VOLUMES if v not in PIXEL_VOLUMES)


def trackml_particle_id(vertex_id, primary_id, generation=0) -> np.ndarray:
    return ((np.asarray(vertex_id, np.int64) << VERTEX_SHIFT) | (np.asarray(primary_id, np.int64) << PRIMARY_SHIFT)
            | (np.asarray(generation, np.int64) << 24))


def resolve_config(config: dict | None) -> dict:
    cfg = merge_section(DEFAULT_TRACKML, config, "trackml")
    cfg["volumes"] = list(check_volumes(cfg["volumes"]))
    if min(float(v) for v in cfg["noise_fraction"].values()) < 0 or float(cfg["max_turn"]) <= 0 or float(cfg["bz"]) == 0:
        raise ConfigError("trackml: noise_fraction must be >= 0, max_turn > 0 and bz non-zero")
    return cfg


def build_layers(cfg: dict) -> Layers:
    if cfg["detectors_csv"]:
        return layers_from_detectors_csv(cfg["detectors_csv"], cfg["volumes"])
    return trackml_layers(cfg["volumes"])


def _smear_ideal(rng, layers: Layers, surf, tx, ty, tz):
    """Measured point on the idealised surface: Gaussian in r-phi and along z (barrel) or r (disk)."""
    rho = np.hypot(tx, ty)
    phi = np.arctan2(ty, tx)
    barrel = layers.kind[surf] == 0
    du = rng.normal(0.0, 1.0, len(tx)) * layers.sigma_u[surf]
    dv = rng.normal(0.0, 1.0, len(tx)) * layers.sigma_v[surf]
    r_m = np.where(barrel, rho, np.clip(rho + dv, layers.lo[surf], layers.hi[surf]))
    phi_m = phi + du / np.maximum(r_m, 1e-6)
    z_m = np.where(barrel, np.clip(tz + dv, layers.lo[surf], layers.hi[surf]), tz)
    return r_m * np.cos(phi_m), r_m * np.sin(phi_m), z_m


def _hits_ideal(rng, layers, cross):
    surf = cross["surface"]
    x, y, z = _smear_ideal(rng, layers, surf, cross["tx"], cross["ty"], cross["tz"])
    keep = np.arange(len(surf))
    return keep, x, y, z, layers.volume_id[surf], layers.layer_id[surf], module_ids(layers, surf, x, y, z), \
        np.stack([cross["tx"], cross["ty"], cross["tz"]], axis=1)


def _hits_modules(rng, layers, cross):
    """Crossings placed on real module planes (overlaps may give two hits), smeared in local u, v."""
    placer = layers.modules
    surf = cross["surface"]
    points = np.stack([cross["tx"], cross["ty"], cross["tz"]], axis=1)
    mom = np.stack([cross["tpx"], cross["tpy"], cross["tpz"]], axis=1)
    dirs = mom / np.linalg.norm(mom, axis=1, keepdims=True)
    ci, rows, true_pt, u, v = placer.place(layers.volume_id[surf], layers.layer_id[surf], points, dirs)
    u_m = u + rng.normal(0.0, 1.0, len(u)) * placer.sigma_u[rows]
    v_m = np.clip(v + rng.normal(0.0, 1.0, len(v)) * placer.sigma_v[rows], -placer.hv[rows], placer.hv[rows])
    meas = placer.to_global(rows, u_m, v_m)
    m = placer.table
    return ci, meas[:, 0], meas[:, 1], meas[:, 2], m.volume_id.to_numpy(np.int32)[rows], \
        m.layer_id.to_numpy(np.int32)[rows], placer.module_id[rows], true_pt


def _noise(rng, layers: Layers, n: int, volumes):
    """`n` noise hits uniform over the sensitive area of `volumes`: (x, y, z, volume, layer, module)."""
    if layers.modules is not None:
        placer = layers.modules
        allowed = np.flatnonzero(placer.table.volume_id.isin(list(volumes)).to_numpy())
        rows = allowed[rng.integers(0, len(allowed), n)]
        v = rng.uniform(-1, 1, n) * placer.hv[rows]
        half_u = placer.minhu[rows] + (placer.maxhu[rows] - placer.minhu[rows]) * (v + placer.hv[rows]) / (
            2 * placer.hv[rows])
        u = rng.uniform(-1, 1, n) * half_u
        p = placer.to_global(rows, u, v)
        m = placer.table
        return p[:, 0], p[:, 1], p[:, 2], m.volume_id.to_numpy(np.int32)[rows], m.layer_id.to_numpy(np.int32)[rows], \
            placer.module_id[rows]
    sens = np.flatnonzero(layers.sensitive & np.isin(layers.volume_id, list(volumes)))
    area = layers.area[sens]
    surf = sens[rng.choice(len(sens), size=n, p=area / area.sum())]
    phi = rng.uniform(-np.pi, np.pi, n)
    w = rng.random(n)
    lo, hi, barrel = layers.lo[surf], layers.hi[surf], layers.kind[surf] == 0
    rho = np.where(barrel, layers.pos[surf], np.sqrt(lo ** 2 + w * (hi ** 2 - lo ** 2)))
    z = np.where(barrel, lo + w * (hi - lo), layers.pos[surf])
    x, y = rho * np.cos(phi), rho * np.sin(phi)
    return x, y, z, layers.volume_id[surf], layers.layer_id[surf], module_ids(layers, surf, x, y, z)


def simulate_event(rng: np.random.Generator, event_id: int, cfg: dict, layers: Layers, source) -> Event:
    gen = source.event(rng)
    n = len(gen["px"])
    coll = gen["collision"].astype(np.int64)
    if np.any(np.diff(coll) < 0):
        raise ConfigError("generator returned collisions out of order")  # the sources emit them in order
    # Primary number within the collision (1-based), in generator order.
    primary = np.arange(n) - np.searchsorted(coll, coll, side="left") + 1
    pid = trackml_particle_id(coll + 1, primary)
    cross = propagate({k: gen[k] for k in ("px", "py", "pz", "q", "mass")} | {"x": gen["vx"], "y": gen["vy"],
                      "z": gen["vz"]}, layers, rng, bz=float(cfg["bz"]),
                      multiple_scattering=bool(cfg["multiple_scattering"]), max_turn=float(cfg["max_turn"]))
    placed = _hits_modules(rng, layers, cross) if layers.modules is not None else _hits_ideal(rng, layers, cross)
    ci, x, y, z, vol, lay, mod, true_pt = placed
    hit_pid = pid[cross["particle"][ci]]
    tpx, tpy, tpz = cross["tpx"][ci], cross["tpy"][ci], cross["tpz"][ci]
    cat = np.concatenate
    noise = [np.zeros(0)] * 3 + [np.zeros(0, np.int32)] * 3
    for part, vols in (("pixel", PIXEL_VOLUMES), ("strip", STRIP_VOLUMES)):
        n_part = int(np.isin(vol, vols).sum())
        n_part_noise = int(rng.poisson(float(cfg["noise_fraction"][part]) * n_part)) if n_part else 0
        if n_part_noise:
            noise = [cat([a, b]) for a, b in zip(noise, _noise(rng, layers, n_part_noise, vols))]
    nx, ny, nz, nvol, nlay, nmod = noise
    n_noise = len(nx)
    hits = pd.DataFrame({
        "x": cat([x, nx]), "y": cat([y, ny]), "z": cat([z, nz]),
        "volume_id": cat([vol, nvol]).astype(np.int32), "layer_id": cat([lay, nlay]).astype(np.int32),
        "module_id": cat([mod, nmod]).astype(np.int32),
        "particle_id": cat([hit_pid, np.zeros(n_noise, np.int64)]),
        "tx": cat([true_pt[:, 0], nx]), "ty": cat([true_pt[:, 1], ny]), "tz": cat([true_pt[:, 2], nz]),
        "tpx": cat([tpx, np.zeros(n_noise)]), "tpy": cat([tpy, np.zeros(n_noise)]), "tpz": cat([tpz, np.zeros(n_noise)]),
    })
    hits.insert(0, "hit_id", rng.permutation(len(hits)).astype(np.int64) + 1)
    nhits = np.bincount(cross["particle"][ci], minlength=n)
    particles = pd.DataFrame({
        "particle_id": pid, "vx": gen["vx"], "vy": gen["vy"], "vz": gen["vz"], "px": gen["px"], "py": gen["py"],
        "pz": gen["pz"], "q": gen["q"].astype(np.int32), "nhits": nhits.astype(np.int32),
        "particle_type": gen["pdg"].astype(np.int32),
    })
    hits["weight"] = hit_weights(hits, particles, phase=1)
    hits = hits.sort_values("hit_id", kind="stable", ignore_index=True)
    f32 = ["x", "y", "z", "tx", "ty", "tz", "tpx", "tpy", "tpz", "weight"]
    hits[f32] = hits[f32].astype(np.float32)
    hits.insert(0, "event_id", np.int64(event_id))
    particles[["vx", "vy", "vz", "px", "py", "pz"]] = particles[["vx", "vy", "vz", "px", "py", "pz"]].astype(np.float32)
    particles.insert(0, "event_id", np.int64(event_id))
    cols = ["event_id", "hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id", "particle_id", "weight",
            "tx", "ty", "tz", "tpx", "tpy", "tpz"]
    return Event(int(event_id), hits[cols], particles)


def simulate_trackml(config: dict | None, event_indices, seed: int):
    """Yield TrackML-like events with the given indices (event_id = index), each seeded by (seed, index)."""
    cfg = resolve_config(config)
    layers = build_layers(cfg)
    source = make_source(cfg["generator"], seed)
    for idx in sorted(set(int(i) for i in event_indices)):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), idx]))
        yield simulate_event(rng, idx, cfg, layers, source)
