"""The TrackML-like detector (ACTS Generic, ML variant) as idealised cylinders and disks.

Layer positions follow REFERENCE.md 4.1 (checked against the module centres of the shared
`detectors.csv.gz`): pixel barrel r = 32/72/116/172 mm (|z| <= 491), pixel endcaps at |z| = 600 ... 1500
(r 30-176), short strips (barrel r = 260/360/500/660, endcaps |z| = 1220 ... 2950, r 240-700) and long
strips (barrel r = 820/1020, endcaps r 750-1020). Resolutions are the ACTS smearing values (4.3),
material the TrackML-era budget (4.4, x/X0 per layer at normal incidence), plus the beam pipe and the
pixel support tube as passive layers.

`Layers` is a table of parallel arrays, one row per surface. A surface crossing becomes a hit on a
module: on the idealised layers the module id comes from a regular phi x z (barrel) or ring x phi
(disk) segmentation of the published module sizes; with `layers_from_detectors_csv` the hit is placed on
the real module planes instead (see `ModulePlacer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

X0_SI_MM = 95.7  # Si radiation length as used by ACTS
X0_BE_MM = 352.8

# volume: (kind, positions, extent lo, extent hi, x/X0, sigma_u (r-phi), sigma_v (z or r), module half u, half v)
# kind "barrel": positions are radii, extent is z; "disk": positions are z, extent is r.
_PIX = dict(x_x0=0.012, sigma=(0.0144, 0.0162), half=(8.4, 36.0))
_SST = dict(x_x0=0.013, sigma=(0.0231, 0.346))
_LST = dict(x_x0=0.013, sigma=(0.0346, 3.118))
_EC_PIX_Z = [600.0, 700.0, 820.0, 960.0, 1100.0, 1300.0, 1500.0]
_EC_STRIP_Z = [1220.0, 1500.0, 1800.0, 2150.0, 2550.0, 2950.0]
VOLUMES = {
    7: dict(kind="disk", pos=[-z for z in _EC_PIX_Z][::-1], lo=30.0, hi=176.0, **_PIX),
    8: dict(kind="barrel", pos=[32.0, 72.0, 116.0, 172.0], lo=-491.0, hi=491.0, **_PIX),
    9: dict(kind="disk", pos=_EC_PIX_Z, lo=30.0, hi=176.0, **_PIX),
    12: dict(kind="disk", pos=[-z for z in _EC_STRIP_Z][::-1], lo=240.0, hi=700.0, half=(40.0, 78.0), **_SST),
    13: dict(kind="barrel", pos=[260.0, 360.0, 500.0, 660.0], lo=-1084.0, hi=1084.0, half=(24.0, 54.0), **_SST),
    14: dict(kind="disk", pos=_EC_STRIP_Z, lo=240.0, hi=700.0, half=(40.0, 78.0), **_SST),
    16: dict(kind="disk", pos=[-z for z in _EC_STRIP_Z][::-1], lo=750.0, hi=1020.0, half=(72.0, 78.0), **_LST),
    17: dict(kind="barrel", pos=[820.0, 1020.0], lo=-1084.0, hi=1084.0, half=(24.0, 54.0), **_LST),
    18: dict(kind="disk", pos=_EC_STRIP_Z, lo=750.0, hi=1020.0, half=(72.0, 78.0), **_LST),
}
PIXEL_VOLUMES = (7, 8, 9)
# Passive cylinders (radius, half length, x/X0): beam pipe (Be 0.8 mm) and pixel support tube (Be 1.8 mm).
PASSIVE = [(19.0, 3100.0, 0.8 / X0_BE_MM), (200.0, 3100.0, 1.8 / X0_BE_MM)]
WORLD_R, WORLD_Z = 1100.0, 3100.0


class Surfaces:
    """Parallel arrays of surfaces: cylinders (kind 0) at radius `pos` spanning z in [lo, hi], disks
    (kind 1) at z `pos` spanning r in [lo, hi]. Shared by the TrackML-like layers and the toy detector."""

    kind: np.ndarray
    pos: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)

    @property
    def area(self) -> np.ndarray:
        return np.where(self.kind == 0, 2 * np.pi * self.pos * (self.hi - self.lo),
                        np.pi * (self.hi ** 2 - self.lo ** 2))


@dataclass
class Layers(Surfaces):
    """One row per surface. kind 0 = cylinder at radius pos (extent in z), 1 = disk at z pos (extent in r)."""

    kind: np.ndarray
    pos: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    x_x0: np.ndarray
    sensitive: np.ndarray
    volume_id: np.ndarray
    layer_id: np.ndarray
    sigma_u: np.ndarray
    sigma_v: np.ndarray
    half_u: np.ndarray
    half_v: np.ndarray
    modules: "ModulePlacer | None" = field(default=None, repr=False)


    def select(self, mask) -> "Layers":
        kw = {k: getattr(self, k)[mask] for k in ("kind", "pos", "lo", "hi", "x_x0", "sensitive", "volume_id",
                                                  "layer_id", "sigma_u", "sigma_v", "half_u", "half_v")}
        return Layers(**kw, modules=self.modules)


def _rows(volumes):
    rows = []
    for vol in volumes:
        spec = VOLUMES[vol]
        for i, p in enumerate(spec["pos"]):
            rows.append(dict(kind=0 if spec["kind"] == "barrel" else 1, pos=p, lo=spec["lo"], hi=spec["hi"],
                             x_x0=spec["x_x0"], sensitive=True, volume_id=vol, layer_id=2 * (i + 1),
                             sigma_u=spec["sigma"][0], sigma_v=spec["sigma"][1], half_u=spec["half"][0],
                             half_v=spec["half"][1]))
    return rows


def _passive_rows():
    return [dict(kind=0, pos=r, lo=-hl, hi=hl, x_x0=x, sensitive=False, volume_id=0, layer_id=0, sigma_u=0.0,
                 sigma_v=0.0, half_u=1.0, half_v=1.0) for r, hl, x in PASSIVE]


def _table(rows) -> Layers:
    df = pd.DataFrame(rows)
    return Layers(df.kind.to_numpy(np.int8), df.pos.to_numpy(float), df.lo.to_numpy(float), df.hi.to_numpy(float),
                  df.x_x0.to_numpy(float), df.sensitive.to_numpy(bool), df.volume_id.to_numpy(np.int32),
                  df.layer_id.to_numpy(np.int32), df.sigma_u.to_numpy(float), df.sigma_v.to_numpy(float),
                  df.half_u.to_numpy(float), df.half_v.to_numpy(float))


def check_volumes(volumes) -> tuple:
    vols = tuple(sorted(int(v) for v in (volumes or VOLUMES)))
    unknown = sorted(set(vols) - set(VOLUMES))
    if unknown or not vols:
        raise DataError(f"unknown TrackML volume(s) {unknown or 'none given'}; expected some of {sorted(VOLUMES)}",
                        column="volume_id")
    return vols


def trackml_layers(volumes=None) -> Layers:
    """The idealised layers of the given volumes (default all nine) plus the passive material."""
    return _table(_rows(check_volumes(volumes)) + _passive_rows())


def module_ids(layers: Layers, surf: np.ndarray, x, y, z) -> np.ndarray:
    """Module id on the regular segmentation: barrel phi x z cells, disk rings x phi cells (1-based)."""
    rho, phi = np.hypot(x, y), np.mod(np.arctan2(y, x), 2 * np.pi)
    lo, hi, pos = layers.lo[surf], layers.hi[surf], layers.pos[surf]
    hu, hv = layers.half_u[surf], layers.half_v[surf]
    barrel = layers.kind[surf] == 0
    # Barrel: n_phi modules of width 2 hu around the circumference, n_z of length 2 hv along z.
    n_phi_b = np.ceil(2 * np.pi * np.abs(pos) / (2 * hu))
    n_z = np.ceil((hi - lo) / (2 * hv))
    iz = np.clip(((z - lo) / (2 * hv)).astype(np.int64), 0, n_z.astype(np.int64) - 1)
    # Disk: rings of radial length 2 hv, each ring with modules of width 2 hu at its mid radius.
    ring = np.clip(((rho - lo) / (2 * hv)).astype(np.int64), 0, None)
    n_phi_d = np.ceil(2 * np.pi * (lo + (ring + 0.5) * 2 * hv) / (2 * hu))
    n_phi_max = np.ceil(2 * np.pi * hi / (2 * hu))
    iphi_b = np.minimum((phi / (2 * np.pi) * n_phi_b).astype(np.int64), n_phi_b.astype(np.int64) - 1)
    iphi_d = np.minimum((phi / (2 * np.pi) * n_phi_d).astype(np.int64), n_phi_d.astype(np.int64) - 1)
    mid = np.where(barrel, iphi_b * n_z + iz, ring * n_phi_max + iphi_d)
    return (mid + 1).astype(np.int32)


# ---- real modules from detectors.csv --------------------------------------------------------------

DETECTOR_COLUMNS = ["volume_id", "layer_id", "module_id", "cx", "cy", "cz", "rot_xu", "rot_xv", "rot_xw", "rot_yu",
                    "rot_yv", "rot_yw", "rot_zu", "rot_zv", "rot_zw", "module_t", "module_minhu", "module_maxhu",
                    "module_hv", "pitch_u", "pitch_v"]


def read_detectors_csv(path) -> pd.DataFrame:
    """The TrackML module table (an unnamed leading index column, as in the shared copy, is ignored)."""
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except (OSError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read detectors.csv: {e}", file=path) from None
    df = df.loc[:, [c for c in df.columns if not c.startswith("Unnamed")]]
    missing = [c for c in DETECTOR_COLUMNS if c not in df.columns]
    if missing:
        raise DataError("missing module columns", file=path, column=", ".join(missing))
    values = df[DETECTOR_COLUMNS[3:]].to_numpy(float)
    if not np.isfinite(values).all():
        raise DataError("NaN/inf in the module table", file=path)
    return df[DETECTOR_COLUMNS].reset_index(drop=True)


class ModulePlacer:
    """Places layer crossings on the real (planar, trapezoidal) modules of a detectors.csv.

    For a crossing of the idealised layer, the candidate modules are the `k` nearest module centres of
    that layer; the track is continued as a straight line (its tangent: the modules are thin and the
    field bends tracks by < 1 um over a module's offset) to each candidate's plane, and every candidate
    whose bounds contain the point records a hit. Overlapping modules can thus give two hits per layer.
    """

    def __init__(self, modules: pd.DataFrame, k: int = 4):
        from scipy.spatial import cKDTree

        self.k = int(k)
        self.table = modules.reset_index(drop=True)
        m = self.table
        self.centre = m[["cx", "cy", "cz"]].to_numpy(float)
        # Rotation columns: global = R @ (u, v, w) + c, R rows x, y, z.
        self.rot = m[["rot_xu", "rot_xv", "rot_xw", "rot_yu", "rot_yv", "rot_yw", "rot_zu", "rot_zv",
                      "rot_zw"]].to_numpy(float).reshape(-1, 3, 3)
        self.minhu = m.module_minhu.to_numpy(float)
        self.maxhu = m.module_maxhu.to_numpy(float)
        self.hv = m.module_hv.to_numpy(float)
        self.sigma_u = m.pitch_u.to_numpy(float) / np.sqrt(12.0)
        self.sigma_v = m.pitch_v.to_numpy(float) / np.sqrt(12.0)
        self.module_id = m.module_id.to_numpy(np.int32)
        key = m.volume_id.to_numpy(np.int64) * 1000 + m.layer_id.to_numpy(np.int64)
        self._rows = {int(k): np.flatnonzero(key == k) for k in np.unique(key)}
        self._trees = {k: cKDTree(self.centre[rows]) for k, rows in self._rows.items()}

    def place(self, volume_id, layer_id, points, directions):
        """Hits on modules for crossings (points, unit directions) of the given layers.

        Returns (crossing index, module row, global point, local u, local v); a crossing may appear
        0, 1 or 2+ times.
        """
        key = volume_id.astype(np.int64) * 1000 + layer_id.astype(np.int64)
        out_i, out_m = [], []
        for k in np.unique(key):
            sel = np.flatnonzero(key == k)
            rows = self._rows.get(int(k))
            if rows is None:
                continue
            _, nn = self._trees[int(k)].query(points[sel], k=min(self.k, len(rows)))
            nn = nn.reshape(len(sel), -1)
            out_i.append(np.repeat(sel, nn.shape[1]))
            out_m.append(rows[nn.ravel()])
        if not out_i:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros((0, 3)), np.zeros(0), np.zeros(0)
        ci, mi = np.concatenate(out_i), np.concatenate(out_m)
        rot = self.rot[mi]
        normal = rot[:, :, 2]
        p, d = points[ci], directions[ci]
        denom = np.einsum("ij,ij->i", normal, d)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.einsum("ij,ij->i", normal, self.centre[mi] - p) / denom
        hit = p + step[:, None] * d
        local = np.einsum("ikj,ik->ij", rot, hit - self.centre[mi])  # R^T (hit - c)
        u, v = local[:, 0], local[:, 1]
        half_u = self.minhu[mi] + (self.maxhu[mi] - self.minhu[mi]) * (v + self.hv[mi]) / (2 * self.hv[mi])
        ok = np.isfinite(step) & (np.abs(step) < 50.0) & (np.abs(v) <= self.hv[mi]) & (np.abs(u) <= half_u)
        order = np.argsort(ci[ok], kind="stable")
        return ci[ok][order], mi[ok][order], hit[ok][order], u[ok][order], v[ok][order]

    def to_global(self, rows, u, v) -> np.ndarray:
        return np.einsum("ijk,ik->ij", self.rot[rows], np.stack([u, v, np.zeros_like(u)], axis=1)) + self.centre[rows]


def layers_from_detectors_csv(path, volumes=None) -> Layers:
    """Layers whose positions and extents come from the module table, with a `ModulePlacer` attached."""
    vols = check_volumes(volumes)
    table = read_detectors_csv(path)
    table = table[table.volume_id.isin(vols)]
    if table.empty:
        raise DataError(f"no modules of volumes {list(vols)}", file=path, column="volume_id")
    rows = []
    ideal = {(r["volume_id"], r["layer_id"]): r for r in _rows(vols)}
    for (vol, lay), m in table.groupby(["volume_id", "layer_id"], sort=True):
        base = ideal.get((vol, lay))
        if base is None:
            raise DataError(f"layer ({vol}, {lay}) is not in the TrackML layer table", file=path, column="layer_id")
        rho = np.hypot(m.cx, m.cy)
        reach = np.hypot(m.module_maxhu, m.module_hv)
        if base["kind"] == 0:
            row = dict(base, pos=float(rho.mean()), lo=float((m.cz - m.module_hv).min()),
                       hi=float((m.cz + m.module_hv).max()))
        else:
            row = dict(base, pos=float(m.cz.mean()), lo=float(max((rho - reach).min(), 1.0)),
                       hi=float((rho + reach).max()))
        row["sigma_u"] = float(m.pitch_u.mean() / np.sqrt(12.0))
        row["sigma_v"] = float(m.pitch_v.mean() / np.sqrt(12.0))
        rows.append(row)
    layers = _table(rows + _passive_rows())
    layers.modules = ModulePlacer(table)
    return layers
