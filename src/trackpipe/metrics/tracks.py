"""Per reconstructed track: its majority particle, counted the way the TrackML library counts it.

This is the one implementation of "majority particle" used by the TrackML score and by the
gnn_tracking-style efficiencies, so the two can never disagree on which particle a track belongs to.

Definition (trackml-library `score.py`, REFERENCE.md 2.2), per event and reconstructed track:

* `nhits`: number of hits in the track;
* majority particle: the particle (noise, particle_id 0, counts as one pseudo-particle) with most
  hits in the track; ties keep the lowest particle id (the library walks hits sorted by particle id
  and replaces the majority only on a strictly larger count);
* `major_nhits`: its hits in the track; `major_particle_nhits`: its hits in the whole truth given;
* `major_weight`: summed truth weight of its hits inside the track (not normalised).

Everything is computed with sorts and segment reductions (`lexsort`, `reduceat`), never a loop
over hits or tracks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .alignment import AlignedHits, align


def group_flags(*sorted_keys: np.ndarray) -> np.ndarray:
    """True where a new group starts in arrays sorted by `sorted_keys` (first element always True)."""
    n = len(sorted_keys[0])
    flags = np.zeros(n, dtype=bool)
    if n:
        flags[0] = True
        for k in sorted_keys:
            flags[1:] |= k[1:] != k[:-1]
    return flags


def particle_hit_counts(event: np.ndarray, particle_id: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                             np.ndarray]:
    """Truth hits per (event, particle).

    Returns the groups' event codes, particle ids and hit counts (sorted by event, particle) and, per
    input hit, the index of its group.
    """
    order = np.lexsort((particle_id, event))
    ev_s, pid_s = event[order], particle_id[order]
    flags = group_flags(ev_s, pid_s)
    starts = np.flatnonzero(flags)
    counts = np.diff(np.append(starts, len(order)))
    group_of_hit = np.empty(len(order), dtype=np.int64)
    group_of_hit[order] = np.cumsum(flags) - 1
    return ev_s[starts], pid_s[starts], counts, group_of_hit


def track_arrays(hits: AlignedHits) -> dict[str, np.ndarray]:
    """Majority-particle analysis of every (event, track) in `hits`; arrays sorted by (event, track).

    Keys: event (dense code), track_id, nhits, major_particle_id, major_nhits,
    major_particle_nhits, major_weight (0 if the hits carry no weight).
    """
    ev, trk, pid = hits.event, hits.track_id, hits.particle_id
    weight = hits.weight if hits.weight is not None else np.zeros(len(ev))
    _, _, pcounts, pgroup = particle_hit_counts(ev, pid)
    particle_nhits = pcounts[pgroup]

    order = np.lexsort((pid, trk, ev))
    ev_s, trk_s, pid_s = ev[order], trk[order], pid[order]
    # Segments of equal (event, track, particle) inside segments of equal (event, track).
    pair_pos = np.flatnonzero(group_flags(ev_s, trk_s, pid_s))
    if len(pair_pos) == 0:
        empty_i = np.empty(0, np.int64)
        return {k: empty_i for k in ("event", "track_id", "nhits", "major_particle_id", "major_nhits",
                                     "major_particle_nhits")} | {"major_weight": np.empty(0)}
    pair_count = np.diff(np.append(pair_pos, len(order)))
    pair_weight = np.add.reduceat(weight[order], pair_pos)
    track_flag = group_flags(ev_s, trk_s)[pair_pos]
    track_of_pair = np.cumsum(track_flag) - 1
    track_first_pair = np.flatnonzero(track_flag)
    max_count = np.maximum.reduceat(pair_count, track_first_pair)
    # Pairs are sorted by particle id inside a track: the first pair reaching the maximum count has
    # the lowest particle id among the tied ones (the library's tie-break).
    candidates = np.flatnonzero(pair_count == max_count[track_of_pair])
    keep = np.ones(len(candidates), dtype=bool)
    keep[1:] = track_of_pair[candidates[1:]] != track_of_pair[candidates[:-1]]
    major = candidates[keep]
    major_hit = order[pair_pos[major]]
    return {
        "event": ev_s[pair_pos[track_first_pair]],
        "track_id": trk_s[pair_pos[track_first_pair]],
        "nhits": np.add.reduceat(pair_count, track_first_pair),
        "major_particle_id": pid[major_hit],
        "major_nhits": pair_count[major],
        "major_particle_nhits": particle_nhits[major_hit],
        "major_weight": pair_weight[major],
    }


def double_majority(major_nhits, nhits, major_particle_nhits) -> np.ndarray:
    """Both fractions strictly above one half, in exact integer arithmetic (exactly 50 % fails)."""
    major_nhits = np.asarray(major_nhits, dtype=np.int64)
    return (2 * major_nhits > np.asarray(nhits)) & (2 * major_nhits > np.asarray(major_particle_nhits))


def track_table(truth: pd.DataFrame, submission: pd.DataFrame) -> pd.DataFrame:
    """One row per reconstructed track (see the module docstring for the columns' definitions).

    `truth`: hit_id, particle_id, weight (+ event_id for several events); `submission`: hit_id,
    track_id (+ event_id). Adds `major_weight_fraction` (major_weight over the event's total truth
    weight) and `good` (the double-majority condition of the TrackML score).
    """
    hits = align(truth, submission)
    arrays = track_arrays(hits)
    total = np.bincount(hits.event, weights=hits.weight, minlength=hits.n_events)
    event = arrays.pop("event")
    df = pd.DataFrame({"event_id": hits.event_ids[event], **arrays})
    with np.errstate(invalid="ignore", divide="ignore"):
        df["major_weight_fraction"] = arrays["major_weight"] / total[event]
    df["good"] = double_majority(df.major_nhits, df.nhits, df.major_particle_nhits)
    return df
