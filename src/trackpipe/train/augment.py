"""Training-time augmentation by exact symmetries of the detectors: rotation about the beam axis and
reflection z -> -z.

Both simulated detectors (the TrackML-like one with its idealised segmentation, and REDVID's) are
invariant under any rotation about z and under z -> -z, and so are their track distributions (the
azimuth is uniform, the pseudorapidity range symmetric, the vertex spread the same in x and y). An
event rotated by a random angle, and mirrored with probability 1/2, is therefore another event of the
same dataset: the hits move, and the labels are recomputed from the transformed track parameters with
the bin edges and normalisation fitted on the unaugmented training split (a rotated track's azimuth
falls in another phi bin, so its class changes). Settings (``training.augment``)::

    augment: {phi_rotation: true, z_reflection: true, copies: 0}

Models with locality clusters compute their clusters once per event, so they cannot be given a new
transformation every batch: they train on the original events plus ``copies`` transformed copies of
each, made once when the training split is loaded (each copy's clusters cached like an event's; the
labels, particle ids and pT, are invariant). Other models ignore ``copies`` and draw a fresh
transformation for every event of every batch.

How each parameter set's parameters transform (``PARAMETER_TRANSFORMS``); a parameter not listed is
invariant:

========================  ==========================================  ===============================
parameter set             rotation by alpha about z                   z -> -z
========================  ==========================================  ===============================
trackml                   phi += alpha; sin_phi, cos_phi follow       theta -> pi - theta
redvid-linear             theta_d += alpha; sin/cos theta_d follow    polar -> pi - polar
redvid-helical            (all invariant: no azimuth among them)      pitch_coeff -> -pitch_coeff
redvid-helical-direction  theta0 += alpha                             pitch_coeff, eta negated
========================  ==========================================  ===============================

Angles are wrapped back into the range the training values occupy ((-pi, pi] for TrackML's phi from
atan2; REDVID's azimuth theta_d is drawn in [0, 2 pi)), so the quantile bin edges still cover them.
The random angle and mirror of each event come from the batch's generator, seeded by (seed, epoch,
batch), so a resumed run draws the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..targets import PARAMETER_SETS, Preprocessing

AUGMENT_DEFAULTS = {"phi_rotation": False, "z_reflection": False, "copies": 0}

# parameter set -> (azimuth parameter rotated by alpha, its (sin, cos) companions, parameters mirrored
# as x -> pi - x under z -> -z, parameters negated under z -> -z)
PARAMETER_TRANSFORMS = {
    "trackml": {"azimuth": "phi", "trig": ("sin_phi", "cos_phi"), "pi_minus": ("theta",), "negate": ()},
    "redvid-linear": {"azimuth": "theta_d", "trig": ("sin_theta_d", "cos_theta_d"), "pi_minus": ("polar",),
                      "negate": ()},
    "redvid-helical": {"azimuth": None, "trig": (), "pi_minus": (), "negate": ("pitch_coeff",)},
    "redvid-helical-direction": {"azimuth": "theta0", "trig": (), "pi_minus": (), "negate": ("pitch_coeff", "eta")},
}
RAW_XYZ, RAW_PARAMS = "raw_xyz", "raw_params"  # EventArrays fields kept for augmentation, never batched


def augment_settings(training: dict) -> dict | None:
    """The resolved ``training.augment`` section, or None when nothing is switched on."""
    section = dict(training.get("augment") or {})
    unknown = set(section) - set(AUGMENT_DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown training.augment keys {sorted(unknown)}; allowed: {sorted(AUGMENT_DEFAULTS)}")
    section = {**AUGMENT_DEFAULTS, **section}
    if not isinstance(section["copies"], int) or isinstance(section["copies"], bool) or section["copies"] < 0:
        raise ConfigError(f"training.augment.copies must be a whole number >= 0, not {section['copies']!r}")
    return section if section["phi_rotation"] or section["z_reflection"] else None


def parameter_columns(kind: str) -> list[str]:
    """Every parameter of the set, classes and regression targets, in a fixed order."""
    sets = PARAMETER_SETS[kind]
    return list(dict.fromkeys(sets["classes"] + sets["regression"]))


def _wrap(angle: np.ndarray, low: float) -> np.ndarray:
    return low + np.mod(angle - low, 2 * np.pi)


def rotate_mirror(x, y, z, alpha, flip):
    """(x, y, z) rotated by alpha about the z axis, then z negated where flip (scalars or per-row arrays)."""
    c, s = np.cos(alpha), np.sin(alpha)
    return c * x - s * y, s * x + c * y, np.where(flip, -z, z)


def draw_transforms(rng: np.random.Generator, settings: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(rotation angle, mirror flag) of `n` events, as switched on in `settings`."""
    alpha = rng.uniform(0.0, 2 * np.pi, n) if settings["phi_rotation"] else np.zeros(n)
    flip = rng.random(n) < 0.5 if settings["z_reflection"] else np.zeros(n, bool)
    return alpha, flip


class Augmentation:
    """Transforms one event's raw fields and re-encodes its inputs and targets (see the module doc)."""

    def __init__(self, prep: Preprocessing, settings: dict, raw_params: np.ndarray):
        if prep.kind not in PARAMETER_TRANSFORMS:
            raise ConfigError(f"no augmentation is defined for parameter set {prep.kind!r}")
        self.prep, self.settings = prep, settings
        self.columns = parameter_columns(prep.kind)
        self.rule = PARAMETER_TRANSFORMS[prep.kind]
        azimuth = self.rule["azimuth"]
        if azimuth is not None:
            values = raw_params[:, self.columns.index(azimuth)]
            # the training values' own range: atan2's (-pi, pi] or a [0, 2 pi) azimuth
            self.wrap_low = -np.pi if np.nanmin(values, initial=0.0) < 0 else 0.0

    def transform(self, xyz: np.ndarray, params: np.ndarray, alpha: float, flip: bool):
        """(xyz, params) of the event rotated by alpha about z, then mirrored in z when flip."""
        xyz = np.stack(rotate_mirror(*np.asarray(xyz, np.float64).T, alpha, flip), axis=1)
        params = params.astype(np.float64, copy=True)
        col = {c: i for i, c in enumerate(self.columns)}
        if alpha and self.rule["azimuth"] is not None:
            a = col[self.rule["azimuth"]]
            params[:, a] = _wrap(params[:, a] + alpha, self.wrap_low)
        if flip:
            for name in self.rule["pi_minus"]:
                params[:, col[name]] = np.pi - params[:, col[name]]
            for name in self.rule["negate"]:
                params[:, col[name]] = -params[:, col[name]]
        if self.rule["trig"]:
            a = params[:, col[self.rule["azimuth"]]]
            sin_name, cos_name = self.rule["trig"]
            params[:, col[sin_name]], params[:, col[cos_name]] = np.sin(a), np.cos(a)
        return xyz, params

    def __call__(self, event: dict, rng: np.random.Generator) -> dict:
        alpha, flip = draw_transforms(rng, self.settings, 1)
        xyz, params = self.transform(event[RAW_XYZ], event[RAW_PARAMS], float(alpha[0]), bool(flip[0]))
        hits = pd.DataFrame(xyz, columns=["x", "y", "z"])
        frame = pd.DataFrame(params, columns=self.columns)
        out = dict(event)
        out["x"] = self.prep.inputs(hits)
        if "cls" in event:
            out["cls"] = self.prep.classes(frame)
        if "reg" in event:
            out["reg"], out["reg_valid"] = self.prep.regression_targets(frame)
        return out


def transformed_copy(hits: pd.DataFrame, particles: pd.DataFrame, settings: dict, rng: np.random.Generator):
    """(hits, particles) with every event rotated by its own random angle and mirrored with probability 1/2
    (as switched on in `settings`); momenta and vertices move with the hits, so pT and the particle ids do
    not change."""
    events = np.unique(hits.event_id.to_numpy(np.int64))
    alpha, flip = draw_transforms(rng, settings, len(events))
    out = []
    for frame, cols in ((hits, [("x", "y", "z")]), (particles, [("px", "py", "pz"), ("vx", "vy", "vz")])):
        frame = frame.copy()
        pos = np.searchsorted(events, frame.event_id.to_numpy(np.int64))
        for c in cols:
            if all(k in frame.columns for k in c):
                moved = rotate_mirror(*(frame[k].to_numpy(np.float64) for k in c), alpha[pos], flip[pos])
                for k, v in zip(c, moved):
                    frame[k] = v
        out.append(frame)
    return out[0], out[1]
