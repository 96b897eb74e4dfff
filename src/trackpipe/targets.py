"""Per-hit inputs and targets for the encoder models, with statistics fitted on the training split only.

* Inputs: hit coordinates (Cartesian by default; the derived r, phi, theta, eta on request) standardised
  with the training split's mean and standard deviation.
* Classes (EncCla, JM): the Cartesian product of per-parameter bins of the hit's track parameters,
  plus one extra class (the last) for noise. Bin edges are quantiles of the training hits' parameters
  (so every class sees about the same number of hits); a parameter with no more distinct training
  values than bins (the charge q, REDVID's azimuthal_coeff = +-1) gets one bin per value instead.
* Regression targets (EncReg, JM): standardised with the training split's statistics; noise hits
  have no target and are excluded from the regression loss.

Parameter sets (`kind`), derived from the particles table:

* ``trackml``:        classes (phi, theta, p, q); regression (theta, sin phi, cos phi, q)
* ``redvid-linear``:  classes (theta_d, polar); regression (polar, sin theta_d, cos theta_d), where
  polar = pi/2 - atan2(z_d, r_d) is the polar angle of the track direction and theta_d its azimuth
* ``redvid-helical``: classes and regression (radial_coeff, pitch_coeff, azimuthal_coeff), the
  paper's helix coefficients
* ``redvid-helical-direction``: classes (theta0, eta, azimuthal_coeff), regression as
  ``redvid-helical``; theta0 = azimuthal_const is the track's start azimuth and
  eta = asinh(pitch_coeff / radial) its pseudorapidity (radial = radial_coeff, or radial_const for
  the uniform helix, whose radial_coeff is 0).

Why two helical sets: the paper's classes carry no azimuth. In the published REDVID files every track
starts at azimuthal_const = 0, so (radial, pitch, charge) tell tracks apart; in this project's
simulator (and any file whose start azimuths vary) two tracks of one event with similar curvature and
pitch share a class wherever they point, and the pitch bin needs curvature x sinh(eta) exactly. The
direction set is what a hit and its neighbours can tell (eta is z / r of a hit from the origin, theta0 is
the hit azimuth corrected by the curvature), like TrackML's (phi, theta, p, q). ``auto`` picks it when
the training tracks' start azimuths vary, the paper's set when they are all equal.

Everything fitted here is written to the model directory's preprocessing.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .io.redvid import HELICAL_PARAMS, LINEAR_PARAMS

PARAMETER_SETS = {
    "trackml": {"classes": ["phi", "theta", "p", "q"], "regression": ["theta", "sin_phi", "cos_phi", "q"]},
    "redvid-linear": {"classes": ["theta_d", "polar"], "regression": ["polar", "sin_theta_d", "cos_theta_d"]},
    "redvid-helical": {"classes": ["radial_coeff", "pitch_coeff", "azimuthal_coeff"],
                       "regression": ["radial_coeff", "pitch_coeff", "azimuthal_coeff"]},
    "redvid-helical-direction": {"classes": ["theta0", "eta", "azimuthal_coeff"],
                                 "regression": ["radial_coeff", "pitch_coeff", "azimuthal_coeff"]},
}
DEFAULT_BINS = {
    "trackml": {"phi": 30, "theta": 30, "p": 3, "q": 2},
    "redvid-linear": {"theta_d": 32, "polar": 32},
    "redvid-helical": {"radial_coeff": 20, "pitch_coeff": 20, "azimuthal_coeff": 2},
    "redvid-helical-direction": {"theta0": 30, "eta": 20, "azimuthal_coeff": 2},
}
INPUT_FEATURES = ("x", "y", "z")
# Per-hit input features a model may use: the store's Cartesian coordinates, or derived cylindrical ones
# (REDVID's native frame: r, the azimuth phi in (-pi, pi], z).
# theta and eta are the polar angle and pseudorapidity of the hit seen from the origin: for a track from
# near the origin they approximate the track's own theta, one of the class parameters.
DERIVED_FEATURES = {
    "r": lambda h: np.hypot(h.x.to_numpy(np.float64), h.y.to_numpy(np.float64)),
    "phi": lambda h: np.arctan2(h.y.to_numpy(np.float64), h.x.to_numpy(np.float64)),
    "theta": lambda h: np.arctan2(np.hypot(h.x.to_numpy(np.float64), h.y.to_numpy(np.float64)),
                                  h.z.to_numpy(np.float64)),
    "eta": lambda h: np.arcsinh(h.z.to_numpy(np.float64)
                                / np.maximum(np.hypot(h.x.to_numpy(np.float64), h.y.to_numpy(np.float64)), 1e-9)),
}


def input_matrix(hits: pd.DataFrame, features) -> np.ndarray:
    cols = []
    for f in features:
        if f in DERIVED_FEATURES:
            cols.append(DERIVED_FEATURES[f](hits))
        elif f in INPUT_FEATURES:
            cols.append(hits[f].to_numpy(np.float64))
        else:
            raise ConfigError(f"unknown input feature {f!r}; known: {list(INPUT_FEATURES) + list(DERIVED_FEATURES)}")
    return np.stack(cols, axis=1)


def detect_kind(particles: pd.DataFrame) -> str:
    """Which parameter set a store's particles carry (REDVID parameter columns win over momenta)."""
    if all(c in particles.columns for c in LINEAR_PARAMS) and particles[LINEAR_PARAMS].notna().all().all():
        return "redvid-linear"
    if all(c in particles.columns for c in HELICAL_PARAMS) and particles[HELICAL_PARAMS].notna().all().all():
        return "redvid-helical-direction" if particles.azimuthal_const.nunique() > 1 else "redvid-helical"
    return "trackml"


def particle_parameters(particles: pd.DataFrame, kind: str) -> pd.DataFrame:
    """All parameters of `kind` (classes and regression) per particle, keyed by event_id, particle_id."""
    p = particles
    out = {"event_id": p.event_id.to_numpy(np.int64), "particle_id": p.particle_id.to_numpy(np.int64)}
    if kind == "trackml":
        px, py, pz = (p[c].to_numpy(np.float64) for c in ("px", "py", "pz"))
        pt = np.hypot(px, py)
        phi = np.arctan2(py, px)
        out.update(phi=phi, theta=np.arctan2(pt, pz), p=np.sqrt(pt**2 + pz**2), q=p.q.to_numpy(np.float64),
                   sin_phi=np.sin(phi), cos_phi=np.cos(phi))
    elif kind == "redvid-linear":
        theta_d = p.theta_d.to_numpy(np.float64)
        out.update(theta_d=theta_d, polar=np.pi / 2 - np.arctan2(p.z_d.to_numpy(np.float64), p.r_d.to_numpy(np.float64)),
                   sin_theta_d=np.sin(theta_d), cos_theta_d=np.cos(theta_d))
    elif kind in ("redvid-helical", "redvid-helical-direction"):
        out.update({c: p[c].to_numpy(np.float64) for c in ("radial_coeff", "pitch_coeff", "azimuthal_coeff")})
        if kind == "redvid-helical-direction":
            out.update(theta0=p.azimuthal_const.to_numpy(np.float64), eta=_helix_eta(p))
    else:
        raise ConfigError(f"unknown parameter set {kind!r}; known: {sorted(PARAMETER_SETS)}")
    return pd.DataFrame(out)


def _helix_eta(p: pd.DataFrame) -> np.ndarray:
    """Pseudorapidity of REDVID helices: z / r = pitch / radial along the track (b = a sinh eta)."""
    coeff, const = p.radial_coeff.to_numpy(np.float64), p.radial_const.to_numpy(np.float64)
    radial = np.where(coeff != 0, coeff, const)
    if (radial == 0).any():
        i = int(np.flatnonzero(radial == 0)[0])
        raise DataError(f"particle {int(p.particle_id.iloc[i])} has radial_coeff = radial_const = 0: no "
                        "radial extent, so its pseudorapidity is undefined", event=int(p.event_id.iloc[i]),
                        column="radial_coeff")
    return np.arcsinh(p.pitch_coeff.to_numpy(np.float64) / radial)


def hit_parameters(hits: pd.DataFrame, particles: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Track parameters of each hit's particle, in hit order; NaN for noise hits."""
    params = particle_parameters(particles, kind)
    joined = hits[["event_id", "particle_id"]].merge(params, on=["event_id", "particle_id"], how="left",
                                                      validate="many_to_one")
    cols = [c for c in params.columns if c not in ("event_id", "particle_id")]
    missing = (hits.particle_id.to_numpy() != 0) & joined[cols[0]].isna().to_numpy()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise DataError(f"hit {int(hits.hit_id.iloc[i])} belongs to particle {int(hits.particle_id.iloc[i])} "
                        "which is not in the particles table", event=int(hits.event_id.iloc[i]),
                        column="particle_id")
    return joined[cols]


def fit_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Interior bin edges: one bin per distinct value if there are at most n_bins, else quantiles."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        raise DataError("no training hits with track parameters to fit bin edges on")
    distinct = np.unique(values)
    if len(distinct) <= n_bins:
        return (distinct[:-1] + distinct[1:]) / 2
    return np.unique(np.quantile(values, np.arange(1, n_bins) / n_bins))


@dataclass
class Preprocessing:
    kind: str
    input_features: list[str]
    input_mean: list[float]
    input_std: list[float]
    class_params: list[str]
    edges: dict[str, list[float]]
    regression: list[str]
    target_mean: list[float]
    target_std: list[float]
    clustering: dict = field(default_factory=dict)  # filled after training (EncReg: HDBSCAN parameters)

    @property
    def bins_per_param(self) -> list[int]:
        return [len(self.edges[c]) + 1 for c in self.class_params]

    @property
    def n_track_classes(self) -> int:
        return int(np.prod(self.bins_per_param))

    @property
    def noise_class(self) -> int:
        return self.n_track_classes

    @property
    def n_classes(self) -> int:
        return self.n_track_classes + 1

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Preprocessing":
        return cls(**d)

    def inputs(self, hits: pd.DataFrame) -> np.ndarray:
        x = input_matrix(hits, self.input_features)
        return ((x - np.asarray(self.input_mean)) / np.asarray(self.input_std)).astype(np.float32)

    def classes(self, params: pd.DataFrame) -> np.ndarray:
        noise = params[self.class_params[0]].isna().to_numpy()
        idx = [np.searchsorted(np.asarray(self.edges[c]), np.nan_to_num(params[c].to_numpy()), side="right")
               for c in self.class_params]
        cls = np.ravel_multi_index(idx, self.bins_per_param)
        return np.where(noise, self.noise_class, cls).astype(np.int64)

    def regression_targets(self, params: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(standardised targets with 0 for noise, bool mask of hits that have a target)."""
        y = params[self.regression].to_numpy(np.float64)
        has = np.isfinite(y).all(axis=1)
        y = (np.nan_to_num(y) - np.asarray(self.target_mean)) / np.asarray(self.target_std)
        return np.where(has[:, None], y, 0.0).astype(np.float32), has

    def encode(self, hits: pd.DataFrame, particles: pd.DataFrame | None) -> dict[str, np.ndarray]:
        """Inputs (and targets when particles are given) for the hits of one or more events."""
        out = {"x": self.inputs(hits)}
        if particles is not None:
            params = hit_parameters(hits, particles, self.kind)
            out["cls"] = self.classes(params)
            out["reg"], out["reg_valid"] = self.regression_targets(params)
        return out


def fit_preprocessing(hits: pd.DataFrame, particles: pd.DataFrame, *, kind: str = "auto",
                      bins: dict | int | None = None, inputs=INPUT_FEATURES) -> Preprocessing:
    """Fit input normalisation, bin edges and target normalisation on the TRAINING split's tables.

    `bins`: per class parameter, or one number for every parameter of the detected set (the U-Net's
    "30 bins per parameter"), or None for the set's defaults.
    """
    if kind == "auto":
        kind = detect_kind(particles)
    if kind not in PARAMETER_SETS:
        raise ConfigError(f"unknown parameter set {kind!r}; known: {sorted(PARAMETER_SETS)}")
    class_params = PARAMETER_SETS[kind]["classes"]
    if isinstance(bins, int) and not isinstance(bins, bool):
        bins = {c: bins for c in class_params}
    bins = dict(DEFAULT_BINS[kind] if not bins else bins)
    if sorted(bins) != sorted(class_params):
        raise ConfigError(f"bins for parameter set {kind!r} must name exactly {class_params}, got {sorted(bins)}")
    x = input_matrix(hits, inputs)
    std = x.std(axis=0)
    params = hit_parameters(hits, particles, kind)
    track = hits.particle_id.to_numpy() != 0
    edges = {c: fit_edges(params[c].to_numpy()[track], int(bins[c])).tolist() for c in class_params}
    reg = params[PARAMETER_SETS[kind]["regression"]].to_numpy(np.float64)[track]
    reg_std = reg.std(axis=0)
    return Preprocessing(
        kind=kind, input_features=list(inputs), input_mean=x.mean(axis=0).tolist(),
        input_std=np.where(std > 0, std, 1.0).tolist(), class_params=class_params, edges=edges,
        regression=PARAMETER_SETS[kind]["regression"], target_mean=reg.mean(axis=0).tolist(),
        target_std=np.where(reg_std > 0, reg_std, 1.0).tolist())
