"""Particle sources for the TrackML-like simulation: parametric (always available) and Pythia 8.

A source returns the charged final-state particles of one bunch crossing as a dict of arrays:
``collision`` (0 = hard scatter, 1.. = pile-up), ``vx, vy, vz`` (mm, beam spot included), ``px, py,
pz`` (GeV), ``q``, ``pdg``, ``mass`` (GeV). Both sources are seeded per event, so an event depends
only on (seed, event index).

Parametric (REFERENCE 5.2): per collision Poisson(``dnch_deta`` x eta width) charged particles, eta
flat in ``eta``, azimuth uniform, pT from a Tsallis-Pareto spectrum dN/dpT ~ pT (1 + (mT - m)/(n T))^-n
(n = 6.8, T = 0.13 GeV: <pT> ~ 0.45 GeV, ~10 % above 0.9 GeV) above ``pt_min``; species pi:K:p =
0.8:0.12:0.08, charge +-1. The hard scatter (when ``hard_scatter``) adds Poisson(``hard_nch``)
particles from a harder spectrum (a rough stand-in for a ttbar event). Pile-up count Poisson(mu);
every collision gets its own Gaussian beam-spot vertex.

Pythia 8 (``pythia8mc``, optional): the hard process ``ttbar`` (Top:gg2ttbar, Top:qqbar2ttbar) or
``tth`` (HiggsSM:gg2Httbar, HiggsSM:qqbar2Httbar, H -> b bbar only), at 14 TeV, plus Poisson(mu)
minimum-bias (SoftQCD:inelastic) pile-up collisions; final-state charged particles within the eta
range and above pt_min are kept, with their production vertices (decays such as K0S are displaced).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import ConfigError
from ..config import as_range

log = logging.getLogger(__name__)
PION, KAON, PROTON = 0.13957, 0.49368, 0.93827
_SPECIES = np.array([211, 321, 2212])
_MASSES = np.array([PION, KAON, PROTON])

DEFAULT_GENERATOR = {
    "source": "parametric",           # parametric | pythia | auto (pythia if pythia8mc is installed)
    "process": "ttbar",               # pythia hard process: ttbar | tth | none
    "mu": 200.0,                      # mean pile-up (Poisson)
    "hard_scatter": True,
    "beam_spot": [0.0125, 0.0125, 55.5],  # Gaussian sigma x, y, z (mm)
    "eta": [-4.0, 4.0],
    "pt_min": 0.1,                    # GeV
    "dnch_deta": 6.0,                 # parametric: charged particles per unit eta per collision
    "tsallis_T": 0.13,
    "tsallis_n": 6.8,
    "species_fractions": [0.8, 0.12, 0.08],  # pi, K, p
    "hard_nch": 150.0,                # parametric hard scatter: mean multiplicity in the eta range
    "hard_tsallis_T": 0.3,
    "hard_tsallis_n": 5.0,
}


def tsallis_sampler(T: float, n: float, mass: float, pt_min: float, pt_max: float = 100.0):
    """Inverse-CDF sampler of dN/dpT ~ pT (1 + (mT - m) / (n T))^-n on [pt_min, pt_max]."""
    grid = np.geomspace(pt_min, pt_max, 4001)
    mt = np.sqrt(grid ** 2 + mass ** 2)
    pdf = grid * (1 + (mt - mass) / (n * T)) ** (-n)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    return lambda u: np.interp(u, cdf, grid)


def _kinematics(rng, n, eta_range, sample_pt, fractions):
    eta = rng.uniform(*eta_range, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    pt = sample_pt(rng.random(n))
    kind = rng.choice(3, size=n, p=np.asarray(fractions, float) / np.sum(fractions))
    q = np.where(rng.random(n) < 0.5, -1, 1)
    return dict(px=pt * np.cos(phi), py=pt * np.sin(phi), pz=pt * np.sinh(eta), q=q,
                pdg=_SPECIES[kind] * q, mass=_MASSES[kind])


def beam_spots(rng, n_coll, sigma):
    """One Gaussian collision position (x, y, z) per collision, widths `sigma` (mm)."""
    return rng.normal(0.0, 1.0, (n_coll, 3)) * np.asarray(sigma, float)


def concat_particles(parts: list[dict]) -> dict:
    """The particle columns of several collisions as one table (the generators' output format)."""
    keys = ("collision", "vx", "vy", "vz", "px", "py", "pz", "q", "pdg", "mass")
    if not parts:
        return {k: np.zeros(0) for k in keys}
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


class ParametricSource:
    """Minimum-bias-like collisions (plus an optional harder hard scatter) from parametrised spectra."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.eta = as_range(cfg["eta"], "generator.eta")
        pt_min = float(cfg["pt_min"])
        self.soft = tsallis_sampler(float(cfg["tsallis_T"]), float(cfg["tsallis_n"]), PION, pt_min)
        self.hard = tsallis_sampler(float(cfg["hard_tsallis_T"]), float(cfg["hard_tsallis_n"]), PION, pt_min)

    def event(self, rng: np.random.Generator) -> dict:
        cfg = self.cfg
        n_pu = rng.poisson(float(cfg["mu"]))
        hard = bool(cfg["hard_scatter"])
        width = self.eta[1] - self.eta[0]
        counts = rng.poisson(float(cfg["dnch_deta"]) * width, n_pu + int(hard))
        if hard:
            counts[0] = rng.poisson(float(cfg["hard_nch"]))
        spots = beam_spots(rng, len(counts), cfg["beam_spot"])
        parts = []
        for c, n in enumerate(counts):
            sampler = self.hard if (hard and c == 0) else self.soft
            k = _kinematics(rng, int(n), self.eta, sampler, cfg["species_fractions"])
            coll = c if hard else c + 1
            parts.append(dict(k, collision=np.full(int(n), coll), vx=np.full(int(n), spots[c, 0]),
                              vy=np.full(int(n), spots[c, 1]), vz=np.full(int(n), spots[c, 2])))
        return concat_particles(parts)


def in_acceptance(px, py, pz, cfg: dict) -> np.ndarray:
    """Generator-level cut shared by every particle source: pT >= ``pt_min`` and eta within ``eta``."""
    eta_range = as_range(cfg["eta"], "generator.eta")
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(pz / pt)
    return (pt >= float(cfg["pt_min"])) & (eta >= eta_range[0]) & (eta <= eta_range[1])


_PROCESSES = {
    "ttbar": ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on"],
    "tth": ["HiggsSM:gg2Httbar = on", "HiggsSM:qqbar2Httbar = on", "25:onMode = off", "25:onIfAny = 5"],
}


def _pythia(module, settings, what: str):
    pythia = module.Pythia("", False)
    for line in settings:
        if not pythia.readString(line):
            raise ConfigError(f"Pythia rejected the setting {line!r} ({what})")
    if not pythia.init():
        raise ConfigError(f"Pythia failed to initialise ({what})")
    return pythia


class PythiaSource:
    """Pythia 8 hard process + Poisson minimum-bias pile-up. Needs the optional `pythia8mc` package."""

    def __init__(self, cfg: dict, seed: int):
        try:
            import pythia8mc
        except ImportError:
            raise ConfigError("generator.source = pythia needs the optional package pythia8mc "
                              "(pip install 'trackpipe[pythia]', i.e. pythia8mc==8.317.2)") from None
        self.cfg = cfg
        self.eta = as_range(cfg["eta"], "generator.eta")
        process = cfg["process"]
        if process not in (*_PROCESSES, "none"):
            raise ConfigError(f"generator.process: {process!r} is not one of {[*_PROCESSES, 'none']}")
        base = ["Beams:eCM = 14000", "Print:quiet = on", "Random:setSeed = on", f"Random:seed = {int(seed) % 900_000_000}",
                "Next:numberCount = 0"]
        self.hard = None
        if cfg["hard_scatter"] and process != "none":
            self.hard = _pythia(pythia8mc, base + _PROCESSES[process], process)
        self.minbias = None
        if float(cfg["mu"]) > 0:
            self.minbias = _pythia(pythia8mc, base + ["SoftQCD:inelastic = on"], "minimum-bias")

    def _charged(self, pythia, coll: int, spot) -> dict:
        rows = [(p.px(), p.py(), p.pz(), p.charge(), p.id(), p.m(), p.xProd(), p.yProd(), p.zProd())
                for p in pythia.event if p.isFinal() and p.isCharged()]
        a = np.array(rows, float).reshape(-1, 9)
        a = a[in_acceptance(a[:, 0], a[:, 1], a[:, 2], self.cfg)]
        n = len(a)
        return dict(collision=np.full(n, coll), px=a[:, 0], py=a[:, 1], pz=a[:, 2], q=np.rint(a[:, 3]).astype(int),
                    pdg=a[:, 4].astype(int), mass=a[:, 5], vx=a[:, 6] + spot[0], vy=a[:, 7] + spot[1],
                    vz=a[:, 8] + spot[2])

    def event(self, rng: np.random.Generator) -> dict:
        # Re-seed both generators from the event's own stream: events do not depend on sharding.
        n_pu = rng.poisson(float(self.cfg["mu"])) if self.minbias is not None else 0
        spots = beam_spots(rng, n_pu + 1, self.cfg["beam_spot"])
        parts = []
        if self.hard is not None:
            self.hard.rndm.init(int(rng.integers(1, 900_000_000)))
            while not self.hard.next():
                pass
            parts.append(self._charged(self.hard, 0, spots[0]))
        if n_pu:
            self.minbias.rndm.init(int(rng.integers(1, 900_000_000)))
            for c in range(1, n_pu + 1):
                while not self.minbias.next():
                    pass
                parts.append(self._charged(self.minbias, c, spots[c]))
        return concat_particles(parts)


def pythia_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pythia8mc") is not None


def make_source(cfg: dict, seed: int):
    """``auto`` picks Pythia 8 when pythia8mc is installed and the parametric generator otherwise."""
    if cfg["source"] == "auto":
        cfg = dict(cfg, source="pythia" if pythia_available() else "parametric")
        if cfg["source"] == "parametric":
            log.warning("pythia8mc is not installed: using the parametric generator (no %s signal)", cfg["process"])
    if cfg["source"] == "parametric":
        return ParametricSource(cfg)
    if cfg["source"] == "pythia":
        return PythiaSource(cfg, seed)
    raise ConfigError(f"generator.source: {cfg['source']!r} is not 'auto', 'parametric' or 'pythia'")
