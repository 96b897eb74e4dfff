"""Reductions of full events ([P1] §2.2) and the train/val/test split by source event.

* `select_volumes`: keep the hits of some volumes (pixel only = 7, 8, 9); particles' nhits become
  their number of kept hits.
* `sample_particles`: keep a random number of particles, uniform in [min, max] among those with at
  least ``min_hits`` kept hits, and their hits. Noise: ``all`` keeps every noise hit, ``proportional``
  keeps each with probability (sampled / eligible particles) so the noise density per track stays
  that of the full event, ``none`` drops noise.
* `reduce_events`: both, repeated ``repeats`` times per source event (the paper uses 5). Reduced event
  k of source event s gets id ``s * repeats + k``, so ``id // repeats`` is its source event.
  TrackML weights are recomputed on the reduced truth (phase 1), matching how the score normalises.
* `split_of_sources`: a seeded assignment of source events to train/val/test with exact fractions;
  every reduced event follows its source, so nothing leaks across splits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .io.store import Event
from .weights import hit_weights

DEFAULT_REDUCE = {
    "volumes": [7, 8, 9],      # null: keep every volume
    "n_particles": [10, 50],   # null: keep every particle (selection only)
    "repeats": 5,
    "noise": "all",            # all | proportional | none
    "min_hits": 1,             # particles eligible for sampling have at least this many kept hits
    "reweight": True,          # recompute TrackML weights on the reduced event (needs tz)
}
SPLITS = ("train", "val", "test")
NOISE_MODES = ("all", "proportional", "none")


def _recount(hits: pd.DataFrame, particles: pd.DataFrame) -> pd.DataFrame:
    counts = hits.loc[hits.particle_id != 0, "particle_id"].value_counts()
    return particles.assign(nhits=counts.reindex(particles.particle_id, fill_value=0).to_numpy(np.int32))


def select_volumes(event: Event, volumes) -> Event:
    """Hits of the given volumes only; nhits recounted; particles without kept hits dropped."""
    hits = event.hits[event.hits.volume_id.isin(list(volumes))].reset_index(drop=True)
    if hits.empty:
        raise DataError(f"no hits in volumes {list(volumes)}", event=event.event_id, column="volume_id")
    particles = _recount(hits, event.particles)
    particles = particles[particles.nhits > 0].reset_index(drop=True)
    cells = None if event.cells is None else event.cells[event.cells.hit_id.isin(hits.hit_id)].reset_index(drop=True)
    return Event(event.event_id, hits, particles, cells)


def sample_particles(event: Event, rng: np.random.Generator, n_range, *, noise: str = "all",
                     min_hits: int = 1) -> Event:
    if noise not in NOISE_MODES:
        raise ConfigError(f"reduce.noise: {noise!r} is not one of {list(NOISE_MODES)}")
    particles = _recount(event.hits, event.particles)
    eligible = particles.particle_id[particles.nhits >= int(min_hits)].to_numpy()
    if len(eligible) == 0:
        raise DataError(f"no particle with >= {min_hits} hits to sample from", event=event.event_id,
                        column="particle_id")
    lo, hi = int(n_range[0]), int(n_range[1])
    n = min(int(rng.integers(lo, hi + 1)), len(eligible))
    chosen = np.sort(rng.choice(eligible, size=n, replace=False))
    pid = event.hits.particle_id.to_numpy()
    keep = np.isin(pid, chosen)
    is_noise = pid == 0
    if noise == "all":
        keep |= is_noise
    elif noise == "proportional":
        keep |= is_noise & (rng.random(len(pid)) < n / len(eligible))
    hits = event.hits[keep].reset_index(drop=True)
    kept = particles[particles.particle_id.isin(chosen)].reset_index(drop=True)
    cells = None if event.cells is None else event.cells[event.cells.hit_id.isin(hits.hit_id)].reset_index(drop=True)
    return Event(event.event_id, hits, kept, cells)


def _reweight(event: Event) -> Event:
    if "tz" not in event.hits.columns:
        return event
    w = hit_weights(event.hits, event.particles, phase=1).astype(np.float32)
    return Event(event.event_id, event.hits.assign(weight=w), event.particles, event.cells)


def reduce_event(event: Event, cfg: dict, rng: np.random.Generator):
    """The ``repeats`` reduced events of one source event (or the selection alone)."""
    base = select_volumes(event, cfg["volumes"]) if cfg["volumes"] else event
    if cfg["n_particles"] is None:
        yield _reweight(base) if cfg["reweight"] else base
        return
    repeats = int(cfg["repeats"])
    for k in range(repeats):
        red = sample_particles(base, rng, cfg["n_particles"], noise=cfg["noise"], min_hits=cfg["min_hits"])
        red = Event(event.event_id * repeats + k, red.hits, red.particles, red.cells)
        yield _reweight(red) if cfg["reweight"] else red


def source_rng(seed: int, source_event_id: int) -> np.random.Generator:
    """The reduction's random stream for one source event: independent of sharding and order."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED, int(source_event_id)]))


def reduce_events(events, cfg: dict, seed: int):
    """Reduce a stream of source events; the randomness of source event s comes from (seed, s)."""
    if int(cfg["repeats"]) < 1:
        raise ConfigError("reduce.repeats must be >= 1")
    for ev in events:
        yield from reduce_event(ev, cfg, source_rng(seed, ev.event_id))


def split_of_sources(n_sources: int, fractions, seed: int) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of each source event 0..n-1: exact counts, seeded order."""
    f = np.asarray(fractions, float)
    if len(f) != 3 or (f < 0).any() or f.sum() <= 0:
        raise ConfigError(f"split: expected three non-negative fractions [train, val, test], got {fractions!r}")
    f = f / f.sum()
    counts = np.floor(f * n_sources).astype(int)
    # Hand the remainder to the splits with the largest fractional parts (train first on ties).
    rest = n_sources - counts.sum()
    counts[np.argsort(-(f * n_sources - counts), kind="stable")[:rest]] += 1
    # A split asked for (fraction > 0) gets at least one source event when there are enough of them.
    for i in np.flatnonzero((f > 0) & (counts == 0)):
        donor = int(np.argmax(counts))
        if counts[donor] > 1:
            counts[donor] -= 1
            counts[i] += 1
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5B117])).permutation(n_sources)
    split = np.empty(n_sources, np.int8)
    split[perm] = np.repeat(np.arange(3, dtype=np.int8), counts)
    return split
