"""The TrackML score, its pixel-restricted variant and TrackFormers' FitAccuracy.

TrackML score of one event (trackml-library `score_event`, REFERENCE.md 2.2 and 2.3):

    score = sum over good tracks of major_weight / W

where W is the total weight of the truth given (so a sub-sampled event whose weights sum to 0.0513
still scores 1.0 with its own truth), and a track is good iff its majority particle (see `tracks`)
holds strictly more than half of the track's hits *and* strictly more than half of the particle's
truth hits. Noise (particle 0) is one pseudo-particle; its hits weigh 0, so noise-majority tracks add
nothing. Every truth hit must be in the submission exactly once and the submission may hold no other
hit (`DataError` otherwise; the library would silently treat missing hits as singletons). An event
whose truth weighs 0 in total has no defined score (NaN). Over several events the score is the mean
of the per-event scores (the Kaggle leaderboard convention), over the events where it is defined.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from ..schema import PIXEL_VOLUMES
from ..weights import hit_weights
from .alignment import AlignedHits, align, with_event_ids
from .tracks import double_majority, track_arrays


def score_aligned(hits: AlignedHits) -> np.ndarray:
    """Per-event TrackML score (index = dense event code) of already aligned hits, using `hits.weight`."""
    tracks = track_arrays(hits)
    good = double_majority(tracks["major_nhits"], tracks["nhits"], tracks["major_particle_nhits"])
    gained = np.bincount(tracks["event"], weights=np.where(good, tracks["major_weight"], 0.0),
                         minlength=hits.n_events)
    total = np.bincount(hits.event, weights=hits.weight, minlength=hits.n_events)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, gained / total, np.nan)


def _mean_over_events(per_event: pd.Series) -> float:
    defined = per_event.dropna()
    return float(defined.mean()) if len(defined) else float("nan")


def trackml_score_per_event(truth: pd.DataFrame, submission: pd.DataFrame) -> pd.Series:
    """TrackML score of each event (Series indexed by event_id); see the module docstring.

    `truth`: hit_id, particle_id, weight (+ event_id); `submission`: hit_id, track_id (+ event_id).
    """
    hits = align(truth, submission)
    return pd.Series(score_aligned(hits), index=pd.Index(hits.event_ids, name="event_id"), name="trackml_score")


def trackml_score(truth: pd.DataFrame, submission: pd.DataFrame) -> float:
    """TrackML score: one event's score, or the mean of the per-event scores of several events."""
    return _mean_over_events(trackml_score_per_event(truth, submission))


def trackml_score_of_labels(particle_id, weight, track_id) -> float:
    """The TrackML score of one event given as parallel per-hit arrays (model selection on validation
    events uses this); 0 for an event without weight."""
    weight = np.asarray(weight, dtype=np.float64)
    if weight.sum() <= 0:
        return 0.0
    hit_id = np.arange(len(weight), dtype=np.int64)
    truth = pd.DataFrame({"hit_id": hit_id, "particle_id": np.asarray(particle_id, np.int64), "weight": weight})
    return trackml_score(truth, pd.DataFrame({"hit_id": hit_id, "track_id": np.asarray(track_id, np.int64)}))


def unit_weights(particle_id: np.ndarray) -> np.ndarray:
    """FitAccuracy weights: 1 for every hit of a particle, 0 for noise."""
    return (np.asarray(particle_id) != 0).astype(np.float64)


def fit_accuracy_per_event(truth: pd.DataFrame, submission: pd.DataFrame) -> pd.Series:
    """TrackFormers' FitAccuracy per event: the TrackML score with unit weights.

    Every hit of a particle weighs 1 and noise weighs 0, whatever the truth's `weight` column says
    (for REDVID stores this *is* the weight column: 1 for track hits, 0 for noise, particle_id =
    track_id + 1). As in the released TrackFormers code there is no minimum track length.
    `truth` needs hit_id and particle_id (+ event_id).
    """
    hits = align(truth, submission, weight=None)
    hits.weight = unit_weights(hits.particle_id)
    return pd.Series(score_aligned(hits), index=pd.Index(hits.event_ids, name="event_id"), name="fit_accuracy")


def fit_accuracy(truth: pd.DataFrame, submission: pd.DataFrame) -> float:
    """FitAccuracy (unit-weight TrackML score), mean over events; see `fit_accuracy_per_event`."""
    return _mean_over_events(fit_accuracy_per_event(truth, submission))


def restricted_truth(hits: pd.DataFrame, particles: pd.DataFrame, *, volumes=PIXEL_VOLUMES,
                     phase: int = 1) -> pd.DataFrame:
    """Truth restricted to `volumes`, with TrackML weights recomputed on the restricted hits.

    `hits` (event_id, hit_id, particle_id, volume_id, tz) and `particles` (event_id, particle_id, vz,
    px, py). Weights follow `trackpipe.weights.hit_weights` applied to each event's restricted truth
    (so particle hit counts, hit order and the normalisation all refer to the restricted hits).
    Returns event_id, hit_id, particle_id, volume_id, layer_id (when present), weight.
    """
    hits, particles = with_event_ids(hits, particles)
    for col in ("volume_id", "tz"):
        if col not in hits.columns:
            raise DataError("needed to recompute weights on the restricted truth but absent from the hits",
                            column=col)
    keep = hits["volume_id"].isin(list(volumes)).to_numpy()
    cols = [c for c in ("event_id", "hit_id", "particle_id", "volume_id", "layer_id", "tz") if c in hits.columns]
    sub = hits.loc[keep, cols].reset_index(drop=True)
    weight = np.zeros(len(sub))
    particle_rows = particles.groupby("event_id", sort=False).indices
    # One call per event: weights are normalised per event and particle ids repeat across events.
    for eid, rows in sub.groupby("event_id", sort=False).indices.items():
        prow = particle_rows.get(eid, np.empty(0, np.int64))
        try:
            weight[rows] = hit_weights(sub.iloc[rows], particles.iloc[prow], phase=phase)
        except DataError as e:
            raise DataError(e.reason, event=int(eid), column=e.column) from None
    return sub.drop(columns="tz").assign(weight=weight)


def restrict_submission(submission: pd.DataFrame, hits: pd.DataFrame, keep: pd.DataFrame) -> pd.DataFrame:
    """The rows of `submission` whose hit is in `keep`; every submitted hit must exist in `hits`.

    `hits` is the full truth (all volumes), `keep` the restricted one (both with event_id, hit_id). A
    submission may omit hits outside `keep` (e.g. a pixel-only model), but may not contain hits that
    the full truth does not have, nor any hit twice.
    """
    hits, submission = with_event_ids(hits, submission)
    keys = ["event_id", "hit_id"]
    dup = submission.duplicated(keys)
    if dup.any():
        first = submission[dup].iloc[0]
        raise DataError(f"hit {int(first.hit_id)} appears more than once in the submission",
                        event=int(first.event_id), column="hit_id")
    known = submission[keys].merge(hits[keys].assign(_known=True), how="left", on=keys)["_known"].notna().to_numpy()
    if not known.all():
        first = submission[~known].iloc[0]
        raise DataError(f"{int((~known).sum())} submitted hit(s) are not in the truth (first: hit "
                        f"{int(first.hit_id)})", event=int(first.event_id), column="hit_id")
    inside = submission[keys].merge(keep[keys].assign(_in=True), how="left", on=keys)["_in"].notna().to_numpy()
    return submission.loc[inside].reset_index(drop=True)


def pixel_restricted_score_per_event(hits: pd.DataFrame, particles: pd.DataFrame, submission: pd.DataFrame, *,
                                     volumes=PIXEL_VOLUMES, phase: int = 1) -> pd.Series:
    """TrackML score with the truth restricted to the pixel volumes (7, 8, 9), per event.

    The truth is cut to the pixel hits and re-weighted there (`restricted_truth`), the submission is
    cut to the same hits (tracks keep their pixel hits), then scored exactly like `trackml_score`.
    Always reported under the name `trackml_score_pixel`: it is not the full-detector score.
    """
    truth = restricted_truth(hits, particles, volumes=volumes, phase=phase)
    sub = restrict_submission(submission, hits, truth)
    return trackml_score_per_event(truth, sub).rename("trackml_score_pixel")


def pixel_restricted_score(hits: pd.DataFrame, particles: pd.DataFrame, submission: pd.DataFrame, *,
                           volumes=PIXEL_VOLUMES, phase: int = 1) -> float:
    """Pixel-restricted TrackML score, mean over events; see `pixel_restricted_score_per_event`."""
    return _mean_over_events(pixel_restricted_score_per_event(hits, particles, submission, volumes=volumes,
                                                              phase=phase))
