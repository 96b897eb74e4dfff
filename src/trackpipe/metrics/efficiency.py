"""Tracking efficiencies, fake and duplicate rates in the gnn_tracking convention (REFERENCE.md 3.1).

Per predicted cluster c (= a reconstructed track; negative labels mean "unclustered"), with the
majority particle of `tracks` (ties keep the lowest particle id):

* maj_frac = maj_hits / |c| (purity); maj_pid_frac = maj_hits / (hits of that particle in the hit set);
* valid: label >= 0 and |c| >= `min_cluster_size` (default 3);
* DM match: maj_frac > 0.5 and maj_pid_frac > 0.5 and valid (strict: exactly 50 % fails);
* perfect match: maj_hits == hits of the particle and maj_frac > 0.99 and valid;
* LHC match: maj_frac > 0.75 and valid;
* purity match (for duplicates): maj_frac > `duplicate_purity` (default 0.5) and valid.

Particles (particle_id > 0 with at least one hit): reconstructable iff their hits cover at least
`min_layers` (default 3) distinct (volume_id, layer_id) pairs of the hit set given. Selected iff
reconstructable, pT >= `pt_min` (default 0.9 GeV) and |eta| < `max_eta` (default 4); pT and eta come
from the particle's initial momentum. `pt_min=None` / `max_eta=None` drop that cut (REDVID has no
momentum). A cluster is selected iff it is valid and its majority particle is selected (so clusters of
noise or of unselected particles are neither good nor fake: gnn_tracking's convention).

Rates over the selected objects (pooled over events: sums of numerators over sums of denominators):

* dm_efficiency = selected particles with a DM-matched cluster / selected particles
  (a DM match takes more than half of the particle's hits, so a particle has at most one);
* perfect_efficiency = selected particles with a perfect-matched cluster / selected particles;
* lhc_efficiency = LHC-matched selected clusters / selected clusters (a purity);
* fake_rate = selected clusters that are not DM-matched / selected clusters
  (also fake_rate_lhc and fake_rate_perfect with the other matches);
* duplicate_rate = selected clusters that are purity-matched to a particle which already has another,
  larger purity-matched valid cluster / selected clusters. Per particle, the purity-matched cluster
  with most of its hits (ties: lowest track id) is the original and every other one a duplicate; so
  duplicates = sum over particles of max(0, m_p - 1), m_p its purity-matched clusters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from .alignment import align
from .tracks import double_majority, group_flags, particle_hit_counts, track_arrays

DEFAULT_CUTS = {"pt_min": 0.9, "max_eta": 4.0, "min_cluster_size": 3, "min_layers": 3, "duplicate_purity": 0.5}
KINEMATICS = ("pt", "eta", "phi", "vz")

# Counters per event (names of the columns of `count_matches`) and the rates built from them.
RATES = {
    "dm_efficiency": ("n_dm_matched", "n_selected_particles"),
    "perfect_efficiency": ("n_perfect_matched", "n_selected_particles"),
    "lhc_efficiency": ("n_lhc_clusters", "n_selected_clusters"),
    "fake_rate": ("n_fake_clusters", "n_selected_clusters"),
    "fake_rate_lhc": ("n_fake_lhc_clusters", "n_selected_clusters"),
    "fake_rate_perfect": ("n_fake_perfect_clusters", "n_selected_clusters"),
    "duplicate_rate": ("n_duplicate_clusters", "n_selected_clusters"),
}


def particle_kinematics(particles: pd.DataFrame) -> pd.DataFrame:
    """event_id, particle_id, pt = hypot(px, py), eta = asinh(pz / pt), phi = atan2(py, px), vz."""
    need = ["particle_id", "px", "py", "pz", "vz"]
    missing = [c for c in need if c not in particles.columns]
    if missing:
        raise DataError(f"particles lack column(s) {missing}", column=", ".join(missing))
    px, py, pz = (particles[c].to_numpy(np.float64) for c in ("px", "py", "pz"))
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(pz / pt)
    return pd.DataFrame({
        "event_id": particles["event_id"].to_numpy(np.int64) if "event_id" in particles else np.int64(0),
        "particle_id": particles["particle_id"].to_numpy(np.int64),
        "pt": pt, "eta": eta, "phi": np.arctan2(py, px), "vz": particles["vz"].to_numpy(np.float64),
    })


def selection(table: pd.DataFrame, *, pt_min=DEFAULT_CUTS["pt_min"], max_eta=DEFAULT_CUTS["max_eta"],
              ignore=()) -> np.ndarray:
    """Selected rows of a particle table, or of a cluster table (whose kinematic columns describe the
    majority particle, and which must also be `valid`). `ignore` names cuts to skip ("pt", "eta"), e.g.
    when binning in that variable."""
    sel = table["reconstructable"].to_numpy(bool).copy()
    if "valid" in table.columns:
        sel &= table["valid"].to_numpy(bool)
    if pt_min is not None and "pt" not in ignore:
        sel &= table["pt"].to_numpy(np.float64) >= pt_min
    if max_eta is not None and "eta" not in ignore:
        sel &= np.abs(table["eta"].to_numpy(np.float64)) < max_eta
    return sel


def match_tables(hits: pd.DataFrame, particles: pd.DataFrame, submission: pd.DataFrame, *,
                 pt_min=DEFAULT_CUTS["pt_min"], max_eta=DEFAULT_CUTS["max_eta"],
                 min_cluster_size=DEFAULT_CUTS["min_cluster_size"], min_layers=DEFAULT_CUTS["min_layers"],
                 duplicate_purity=DEFAULT_CUTS["duplicate_purity"]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-particle and per-cluster match tables (definitions in the module docstring).

    `hits`: event_id, hit_id, particle_id, volume_id, layer_id (the hit set the metrics refer to);
    `particles`: event_id, particle_id, px, py, pz, vz; `submission`: event_id, hit_id, track_id, one
    row per hit of `hits`.

    Particle table: event_id, particle_id, nhits, n_layers, reconstructable, pt, eta, phi, vz,
    selected, dm_matched, perfect_matched, n_purity_matched.
    Cluster table: event_id, track_id, size, maj_particle_id, maj_hits, maj_particle_hits, maj_frac,
    maj_pid_frac, valid, dm_match, perfect_match, lhc_match, purity_match, duplicate, and the majority
    particle's reconstructable, pt, eta, phi, vz; plus selected.
    """
    aligned = align(hits, submission, weight=None, extra=("volume_id", "layer_id"))
    ev, pid = aligned.event, aligned.particle_id
    event_ids = aligned.event_ids

    # Particles: hit counts and distinct (volume, layer) pairs, one row per (event, particle).
    p_ev, p_pid, p_nhits, _ = particle_hit_counts(ev, pid)
    vol = aligned.extra["volume_id"].astype(np.int64)
    lay = aligned.extra["layer_id"].astype(np.int64)
    order = np.lexsort((lay, vol, pid, ev))
    ev_s, pid_s = ev[order], pid[order]
    layer_start = group_flags(ev_s, pid_s, vol[order], lay[order])
    particle_of_layer = np.cumsum(group_flags(ev_s, pid_s))[layer_start] - 1
    n_layers = np.bincount(particle_of_layer, minlength=len(p_pid))
    ptab = pd.DataFrame({"event_id": event_ids[p_ev], "particle_id": p_pid, "nhits": p_nhits, "n_layers": n_layers})
    ptab = ptab[ptab.particle_id != 0].reset_index(drop=True)
    ptab["reconstructable"] = ptab.n_layers >= min_layers
    kin = particle_kinematics(particles)
    ptab = ptab.merge(kin, how="left", on=["event_id", "particle_id"], validate="one_to_one")
    unknown = ptab.pt.isna()
    if unknown.any():
        first = ptab[unknown].iloc[0]
        raise DataError(f"{int(unknown.sum())} particle(s) with hits are not in the particles table (first: "
                        f"{int(first.particle_id)})", event=int(first.event_id), column="particle_id")

    # Clusters: the shared majority analysis, then the match flags.
    t = track_arrays(aligned)
    size, maj = t["nhits"], t["major_nhits"]
    ctab = pd.DataFrame({
        "event_id": event_ids[t["event"]], "track_id": t["track_id"], "size": size,
        "maj_particle_id": t["major_particle_id"], "maj_hits": maj, "maj_particle_hits": t["major_particle_nhits"],
        "maj_frac": maj / np.maximum(size, 1), "maj_pid_frac": maj / np.maximum(t["major_particle_nhits"], 1),
    })
    valid = (ctab.track_id.to_numpy() >= 0) & (size >= min_cluster_size)
    ctab["valid"] = valid
    ctab["dm_match"] = double_majority(maj, size, t["major_particle_nhits"]) & valid
    ctab["perfect_match"] = (maj == t["major_particle_nhits"]) & (ctab.maj_frac.to_numpy() > 0.99) & valid
    ctab["lhc_match"] = (ctab.maj_frac.to_numpy() > 0.75) & valid
    ctab["purity_match"] = (ctab.maj_frac.to_numpy() > duplicate_purity) & valid
    ctab["duplicate"] = _duplicates(ctab)
    props = ptab[["event_id", "particle_id", "reconstructable", *KINEMATICS]].rename(
        columns={"particle_id": "maj_particle_id"})
    ctab = ctab.merge(props, how="left", on=["event_id", "maj_particle_id"], validate="many_to_one")
    ctab["reconstructable"] = ctab["reconstructable"].fillna(False).astype(bool)  # noise majority
    ctab["selected"] = selection(ctab, pt_min=pt_min, max_eta=max_eta)

    # Particle-side flags from the clusters that match them.
    ptab["selected"] = selection(ptab, pt_min=pt_min, max_eta=max_eta)
    for flag, column in (("dm_match", "dm_matched"), ("perfect_match", "perfect_matched"),
                         ("purity_match", "n_purity_matched")):
        counts = ctab[ctab[flag]].groupby(["event_id", "maj_particle_id"]).size().rename(column)
        ptab = ptab.merge(counts, how="left", left_on=["event_id", "particle_id"], right_index=True)
        ptab[column] = ptab[column].fillna(0).astype(np.int64)
    ptab["dm_matched"] = ptab.dm_matched > 0
    ptab["perfect_matched"] = ptab.perfect_matched > 0
    return ptab, ctab


def _duplicates(ctab: pd.DataFrame) -> np.ndarray:
    """Purity-matched clusters other than the largest one (ties: lowest track id) of their particle."""
    matched = np.flatnonzero(ctab.purity_match.to_numpy())
    out = np.zeros(len(ctab), dtype=bool)
    if len(matched) == 0:
        return out
    sub = ctab.iloc[matched]
    order = np.lexsort((sub.track_id.to_numpy(), -sub.maj_hits.to_numpy(), sub.maj_particle_id.to_numpy(),
                        sub.event_id.to_numpy()))
    first = group_flags(sub.event_id.to_numpy()[order], sub.maj_particle_id.to_numpy()[order])
    out[matched[order[~first]]] = True
    return out


def count_matches(ptab: pd.DataFrame, ctab: pd.DataFrame, event_ids=None) -> pd.DataFrame:
    """Per-event counters (index event_id) of the selected particles and clusters and their matches.

    Uses the `selected` columns of the tables. `event_ids` lists events to include even if they have
    no particle or cluster (their counters are 0).
    """
    p = ptab[ptab.selected]
    c = ctab[ctab.selected]
    counters = {
        "n_selected_particles": p.groupby("event_id").size(),
        "n_dm_matched": p.groupby("event_id").dm_matched.sum(),
        "n_perfect_matched": p.groupby("event_id").perfect_matched.sum(),
        "n_selected_clusters": c.groupby("event_id").size(),
        "n_lhc_clusters": c.groupby("event_id").lhc_match.sum(),
        "n_fake_clusters": (~c.dm_match).groupby(c.event_id).sum(),
        "n_fake_lhc_clusters": (~c.lhc_match).groupby(c.event_id).sum(),
        "n_fake_perfect_clusters": (~c.perfect_match).groupby(c.event_id).sum(),
        "n_duplicate_clusters": c.groupby("event_id").duplicate.sum(),
    }
    if event_ids is None:
        event_ids = np.union1d(ptab.event_id.unique(), ctab.event_id.unique())
    index = pd.Index(np.asarray(event_ids, dtype=np.int64), name="event_id")
    return pd.DataFrame({k: v.reindex(index, fill_value=0).astype(np.int64) for k, v in counters.items()},
                        index=index)


def rates(counts) -> dict[str, float] | pd.DataFrame:
    """The rates of `RATES` from counters: a dict from one row / summed counters (a Series or dict), or
    a DataFrame of per-event rates from a per-event counter table. 0/0 is NaN."""
    if isinstance(counts, pd.DataFrame):
        num = {k: counts[n].to_numpy(np.float64) for k, (n, _) in RATES.items()}
        den = {k: counts[d].to_numpy(np.float64) for k, (_, d) in RATES.items()}
        with np.errstate(invalid="ignore", divide="ignore"):
            return pd.DataFrame({k: np.where(den[k] > 0, num[k] / den[k], np.nan) for k in RATES}, index=counts.index)
    out = {}
    for k, (n, d) in RATES.items():
        out[k] = float(counts[n]) / float(counts[d]) if counts[d] > 0 else float("nan")
    return out


def tracking_metrics_per_event(hits, particles, submission, **cuts) -> pd.DataFrame:
    """Per-event rates and counters (index event_id); `cuts` as in `match_tables`."""
    ptab, ctab = match_tables(hits, particles, submission, **cuts)
    counts = count_matches(ptab, ctab, event_ids=np.unique(hits["event_id"]) if "event_id" in hits else None)
    return rates(counts).join(counts)


def tracking_metrics(hits, particles, submission, **cuts) -> dict[str, float]:
    """All rates at once, pooled over the events (sum of numerators / sum of denominators), plus the
    summed counters; `cuts` (pt_min, max_eta, min_cluster_size, min_layers, duplicate_purity) as in
    `match_tables`."""
    ptab, ctab = match_tables(hits, particles, submission, **cuts)
    totals = count_matches(ptab, ctab).sum()
    return rates(totals) | {k: int(v) for k, v in totals.items()}


def _one_rate(name: str, key: str, doc: str):
    def rate(hits, particles, submission, **cuts) -> float:
        return tracking_metrics(hits, particles, submission, **cuts)[key]

    rate.__name__ = rate.__qualname__ = name
    rate.__doc__ = (f"{doc}\n\n    Pooled over events (key {key!r} of `tracking_metrics`); arguments and cuts as in "
                    "`match_tables`, definitions in the module docstring.")
    return rate


double_majority_efficiency = _one_rate(
    "double_majority_efficiency", "dm_efficiency",
    "Double-majority efficiency: selected particles with a DM-matched cluster / selected particles.")
perfect_efficiency = _one_rate(
    "perfect_efficiency", "perfect_efficiency",
    "Perfect efficiency: selected particles reconstructed as one pure cluster holding all their hits / selected "
    "particles.")
lhc_efficiency = _one_rate(
    "lhc_efficiency", "lhc_efficiency", "LHC efficiency: selected clusters with purity > 0.75 / selected clusters.")
fake_rate = _one_rate(
    "fake_rate", "fake_rate", "Fake rate: selected clusters that are not DM-matched / selected clusters.")
duplicate_rate = _one_rate(
    "duplicate_rate", "duplicate_rate",
    "Duplicate rate: selected purity-matched clusters beyond the first per particle / selected clusters.")
