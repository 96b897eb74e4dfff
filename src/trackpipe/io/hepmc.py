"""HepMC3 generator files (ASCII, plain or gzip) turned into TrackML-like hit events.

A HepMC file holds generator particles, not hits. Each event's final-state (status 1) charged
particles become the hard-scatter collision of the TrackML-like simulation and go through exactly
the code `trackpipe simulate` uses for generator particles (`sim.trackml_like.simulate_event`):
generator-level acceptance (``generator.pt_min``, ``generator.eta``), a Gaussian beam-spot shift
(``generator.beam_spot``, as Pythia's hard scatter gets; set it to [0, 0, 0] to keep the file's
vertices as they are), helix + multiple scattering, smeared hits, noise hits, TrackML particle ids
(vertex id 1 = this collision, primary id = rank of the particle among the kept ones in file order)
and phase-1 weights.

Pile-up: with ``trackml={"generator": {"mu": N}}`` Poisson(N) collisions from the configured
generator (parametric or Pythia, ``hard_scatter`` off) are overlaid, vertex ids 2, 3, ... exactly as
in `simulate`. Without an explicit ``generator.mu`` no pile-up is added (the simulator's default of
200 would bury the file's event).

Conventions:

* charge from the PDG id (`pdg_charge`, the PDG numbering scheme: quark content of hadrons, Z of
  nuclei, a table for leptons and bosons); a status-1 particle with fractional charge (a quark or
  diquark: a parton-level file) is an error, not silently dropped;
* units: momenta converted to GeV when the event says MEV, lengths to mm when it says CM;
* mass: the generated mass where the file sets one, else sqrt(E^2 - p^2);
* production vertex: the particle's vertex position; particles attached to no vertex take the
  event position (HepMC3's root vertex);
* event ids: the HepMC event numbers when they are all distinct and non-negative, else 0..n-1 in
  file order (logged, and ``event_numbering`` says which);
* per-event RNG: ``SeedSequence([seed, event_id])``, as `simulate`; same seed -> identical events;
* event weights and non-final particles are not used.

Reading: the file is scanned once for its event lines (no parsing); events are then parsed by pyhepmc
as a forward stream, so reading the events in order parses each exactly once. Asking for an earlier
event reopens the stream.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..sim.generators import beam_spots, concat_particles, in_acceptance, make_source
from ..sim.trackml_like import build_layers, resolve_config, simulate_event
from .store import Event

log = logging.getLogger(__name__)
_GZIP_MAGIC = b"\x1f\x8b"
_V3_LISTING = b"HepMC::Asciiv3-START_EVENT_LISTING"

# Three times the charge of the quarks d u s c b t (PDG codes 1-6).
_QUARK_CHARGE3 = (0, -1, 2, -1, 2, -1, 2)
# Three times the charge of the fundamental particles that are not quarks (PDG codes 7-100).
_FUNDAMENTAL_CHARGE3 = {11: -3, 13: -3, 15: -3, 17: -3, 24: 3, 34: 3, 37: 3}


def pdg_charge3(pdg: int) -> int:
    """Three times the electric charge (in e) of a PDG particle id (PDG 'Monte Carlo numbering scheme').

    Nuclei 10LZZZAAAI: 3 Z. Quarks 1-8 and leptons/bosons: table. Hadrons with digits
    (n_q1 n_q2 n_q3 n_J): baryons sum the three quark charges; mesons are q(n_q2) qbar(n_q3) with the
    quark of the up type carrying the particle's sign (so K+ = 321 = u sbar, B+ = 521 = u bbar).
    Antiparticles (negative id) flip the sign. Unknown or special codes (> 7 digits other than nuclei)
    count as neutral.
    """
    a = abs(int(pdg))
    sign = 1 if pdg > 0 else -1
    if a >= 1_000_000_000:  # nucleus
        return sign * 3 * ((a // 10_000) % 1000)
    if a <= 8:
        return sign * (_QUARK_CHARGE3[a] if a <= 6 else (-1 if a == 7 else 2))
    if a <= 100:
        return sign * _FUNDAMENTAL_CHARGE3.get(a, 0)
    if a >= 10_000_000:  # generator-specific and BSM codes: no quark content to read
        return 0
    q1, q2, q3 = (a // 1000) % 10, (a // 100) % 10, (a // 10) % 10
    if q3 == 0 or q2 == 0 or q2 > 6 or q3 > 6 or q1 > 6:
        # Diquarks (q3 = 0) carry the sum of their two quarks; anything else is not a standard hadron.
        if q3 == 0 and 0 < q1 <= 6 and 0 < q2 <= 6:
            return sign * (_QUARK_CHARGE3[q1] + _QUARK_CHARGE3[q2])
        return 0
    if q1 == 0:  # meson q(n_q2) antiquark(n_q3); down-type heavier quark (3, 5) means the antiquark is it
        c = _QUARK_CHARGE3[q3] - _QUARK_CHARGE3[q2] if q2 in (3, 5) else _QUARK_CHARGE3[q2] - _QUARK_CHARGE3[q3]
        return sign * c
    return sign * (_QUARK_CHARGE3[q1] + _QUARK_CHARGE3[q2] + _QUARK_CHARGE3[q3])


def pdg_charge(pdg: int) -> float:
    return pdg_charge3(pdg) / 3.0


def _open_bytes(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == _GZIP_MAGIC else open(path, "rb")


def scan_event_numbers(path: Path) -> list[int]:
    """Event numbers of every `E` line, in file order, after checking the HepMC3 ASCII header."""
    numbers: list[int] = []
    head: list[bytes] = []
    try:
        with _open_bytes(path) as f:
            for line in f:
                if len(head) < 3:  # the listing line comes within the first lines (after the version)
                    head.append(line.strip())
                    if len(head) == 3 and _V3_LISTING not in head:
                        _reject_header(head, path)
                if line.startswith(b"E "):
                    fields = line.split(maxsplit=2)
                    try:
                        numbers.append(int(fields[1]))
                    except (IndexError, ValueError):
                        raise DataError(f"malformed event line {line[:60]!r}", file=path, event=len(numbers)) from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read the file (truncated or corrupt?): {e}", file=path) from None
    if _V3_LISTING not in head:
        _reject_header(head, path)
    if not numbers:
        raise DataError("no events (no 'E' lines) in the HepMC3 file", file=path)
    return numbers


def _reject_header(head: list[bytes], path) -> None:
    what = "a HepMC2 (IO_GenEvent) file" if any(b"IO_GenEvent" in h for h in head) else "not HepMC3 ASCII"
    raise DataError(f"{what}: expected the line {_V3_LISTING.decode()!r} in the header", file=path)


class HepMCSource:
    """The events of one HepMC3 ASCII file, simulated through the TrackML-like detector."""

    def __init__(self, path, trackml: dict | None = None, seed: int = 0):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError("no such HepMC3 file", file=self.path)
        explicit_mu = "mu" in ((trackml or {}).get("generator") or {})
        self.cfg = resolve_config(trackml)
        if not explicit_mu:
            self.cfg["generator"]["mu"] = 0.0
        self.seed = int(seed)
        self.layers = build_layers(self.cfg)
        gen = self.cfg["generator"]
        self.pileup = make_source(dict(gen, hard_scatter=False), self.seed) if float(gen["mu"]) > 0 else None
        self._numbers = scan_event_numbers(self.path)
        distinct = len(set(self._numbers)) == len(self._numbers) and min(self._numbers) >= 0
        self.event_numbering = "hepmc" if distinct else "index"
        if not distinct:
            log.warning("%s: HepMC event numbers are duplicated or negative; using 0..%d in file order",
                        self.path, len(self._numbers) - 1)
        ids = self._numbers if distinct else list(range(len(self._numbers)))
        self._position = {eid: i for i, eid in enumerate(ids)}
        self._ids = ids
        self._reader = None
        self._next = 0  # file position (event index) the open reader will return next

    @property
    def event_ids(self) -> list[int]:
        return list(self._ids)

    @property
    def metadata(self) -> dict:
        """What the store's manifest records about how the hits were made."""
        return {"seed": self.seed, "config": {"trackml": self.cfg}, "event_numbering": self.event_numbering}

    def _read_at(self, index: int):
        import pyhepmc

        if self._reader is None or index < self._next:
            self.close()
            self._reader = pyhepmc.open(str(self.path), "r", format="HepMC3")
            self._next = 0
        event = None
        while self._next <= index:
            try:
                event = self._reader.read()
            except (RuntimeError, OSError, ValueError) as e:
                raise DataError(f"pyhepmc could not parse the event: {e}", file=self.path, event=self._ids[index]) from None
            self._next += 1
            if event is None:
                raise DataError(f"the file ended before event number {self._numbers[index]} (file position {index})",
                                file=self.path, event=self._ids[index])
        if event.event_number != self._numbers[index]:
            raise DataError(f"parsed event number {event.event_number} where the scan found {self._numbers[index]}",
                            file=self.path, event=self._ids[index])
        return event

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def particles(self, event_id: int) -> dict:
        """The event's charged final-state particles inside the generator acceptance (GeV, mm)."""
        if event_id not in self._position:
            raise DataError("no such event in the file", file=self.path, event=event_id)
        ev = self._read_at(self._position[event_id])
        return charged_final_state(ev, self.cfg["generator"], file=self.path, event=event_id)

    def read_event(self, event_id: int) -> Event:
        hard = self.particles(event_id)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(event_id)]))
        source = _FileCollision(hard, self.cfg["generator"]["beam_spot"], self.pileup)
        return simulate_event(rng, int(event_id), self.cfg, self.layers, source)


class _FileCollision:
    """A particle source (`event(rng)`, as in `sim.generators`) that yields the file's particles as
    collision 0, shifted by a beam-spot draw, followed by the configured pile-up."""

    def __init__(self, hard: dict, beam_spot, pileup):
        self.hard, self.beam_spot, self.pileup = hard, beam_spot, pileup

    def event(self, rng: np.random.Generator) -> dict:
        spot = beam_spots(rng, 1, self.beam_spot)[0]
        h = self.hard
        n = len(h["px"])
        parts = [dict(h, collision=np.zeros(n, np.int64), vx=h["vx"] + spot[0], vy=h["vy"] + spot[1],
                      vz=h["vz"] + spot[2])]
        if self.pileup is not None:
            parts.append(self.pileup.event(rng))
        return concat_particles(parts)


def charged_final_state(ev, generator_cfg: dict, *, file, event) -> dict:
    """Status-1 charged particles of a pyhepmc event, in file order, converted to GeV and mm, within the
    generator acceptance; arrays px, py, pz, q, pdg, mass, vx, vy, vz."""
    import pyhepmc

    gev = 1e-3 if ev.momentum_unit == pyhepmc.Units.MEV else 1.0
    mm = 10.0 if ev.length_unit == pyhepmc.Units.CM else 1.0
    arr = ev.numpy.particles
    status, pdg = np.asarray(arr.status), np.asarray(arr.pid, np.int64)
    charge3 = {int(p): pdg_charge3(int(p)) for p in np.unique(pdg[status == 1])}
    fractional = [p for p, c in charge3.items() if c % 3]
    if fractional:
        raise DataError(f"final-state (status 1) particles with fractional charge, PDG ids {sorted(fractional)}: "
                        "a parton-level file? Hadronise it first", file=file, event=event, column="pid")
    final = np.flatnonzero(status == 1)
    q = np.array([charge3[int(p)] // 3 for p in pdg[final]], np.int64)
    final, q = final[q != 0], q[q != 0]
    px, py, pz, e = (np.asarray(getattr(arr, k), float)[final] * gev for k in ("px", "py", "pz", "e"))
    gen_mass = np.asarray(arr.generated_mass, float)[final] * gev
    mass_set = np.asarray(arr.is_generated_mass_set, bool)[final]
    mass = np.where(mass_set, gen_mass, np.sqrt(np.maximum(e ** 2 - px ** 2 - py ** 2 - pz ** 2, 0.0)))
    bad = ~np.isfinite(np.stack([px, py, pz, mass]))
    if bad.any():
        raise DataError("NaN/inf momentum or mass in final-state particles", file=file, event=event, column="momentum")
    origin = ev.event_pos()
    particles = ev.particles
    vtx = np.empty((len(final), 3))
    for k, i in enumerate(final):
        v = particles[int(i)].production_vertex
        pos = origin if v is None else v.position
        vtx[k] = (pos.x, pos.y, pos.z)
    vtx *= mm
    keep = in_acceptance(px, py, pz, generator_cfg)
    return dict(px=px[keep], py=py[keep], pz=pz[keep], q=q[keep], pdg=pdg[final][keep], mass=mass[keep],
                vx=vtx[keep, 0], vy=vtx[keep, 1], vz=vtx[keep, 2])
