"""Evaluate a submission against an event store (or a TrackML directory): headline metrics, per-event
rows, binned rates with bootstrap intervals, timing statistics.

`evaluate(...)` writes, atomically, into `out_dir`:

* `metrics.json`: flat keys `trackml_score`, `fit_accuracy`, `dm_efficiency`, `perfect_efficiency`,
  `lhc_efficiency`, `fake_rate` (+ `fake_rate_lhc`, `fake_rate_perfect`), `duplicate_rate`,
  `n_events`, counters, the cuts used and `selection` (a readable summary of them); plus
  `trackml_score_pixel` when the truth has non-pixel TrackML volumes; plus `<column>_median`,
  `_p90`, `_mean` of the timing CSV's `device_ms`, `host_cpu_ms`, `wall_ms` and `timing_n_events`.
  Undefined values (no selected particle, all-NaN device times, ...) are `null`, never invented.
* `per_event.parquet`: one row per event with the same metric names, counters, n_hits, n_particles,
  n_tracks and the event's timing columns.
* `binned.parquet`: metric, variable, lo_edge, hi_edge, value, ci_lo, ci_hi, n (see
  `metrics.binning.binned_rates`), including variable "all" (headline rates with their intervals):
  the gnn_tracking rates and the paper's Fig. 4 rates `fit_accuracy` and `track_fake_rate`, whose
  selection (`fig4_pt_min`, `fig4_max_eta`, `fig4_min_track_hits`) metrics.json records as
  `fig4_selection` (the report writes it in Fig. 4's caption).

Truth (documented choice): every function here that scores (`evaluate`, `evaluate_submission`,
`score_submission`, `open_truth`, hence `trackpipe score`) refuses a store without truth (manifest
``"truth": false``) or a TrackML directory without truth files with a DataError naming it. Only
`evaluate_for_workflow`, the workflow's evaluate step, accepts one: it marks the result instead
(`evaluate_without_truth`): the same three files with ``"truth": false``, the timing metrics, event,
hit and track counts, and no score or efficiency; `metrics.json` of a store with truth says
``"truth": true``.

Conventions (documented choices):

* Scores (`trackml_score`, `fit_accuracy`, `trackml_score_pixel`) are means of per-event scores;
  efficiencies and rates are pooled over events (sums of counts).
* REDVID-like truth (every particle has zero momentum): pT and eta cuts are meaningless, so no
  pT/eta selection is applied (`selection` = "none (REDVID: no momentum)") and nothing is binned in
  pT or eta (only the "all" rows); reconstructable (>= `min_layers` layers) and the minimum cluster
  size still apply.
* Pixel-only submissions (`pixel_only`: None = detect; True; False): when the truth has strip volumes
  and the submission holds exactly its pixel hits (volumes 7, 8, 9), the full-detector
  `trackml_score` is not defined (null) and every other metric refers to the pixel hit set;
  `trackml_score_pixel` is then the score to quote.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from .errors import DataError
from .io.atomic import write_json, write_parquet
from .io.store import Event, EventStore
from .io.submission import check_submission, read_submission
from .io.trackml import TrackMLSource
from .metrics.binning import DEFAULT_BINS, PAPER_CUTS, binned_rates, paper_tables
from .metrics.efficiency import DEFAULT_CUTS, count_matches, match_tables, rates
from .metrics.score import fit_accuracy_per_event, restrict_submission, restricted_truth, trackml_score_per_event
from .metrics.timing import timing_summary
from .schema import PIXEL_VOLUMES
from .schema import TIMING_MEASURES as TIMING_COLUMNS

log = logging.getLogger(__name__)

# TrackML volumes outside the pixel detector (short and long strips).
STRIP_VOLUMES = (12, 13, 14, 16, 17, 18)
NO_MOMENTUM_SELECTION = "none (REDVID: no momentum)"
# Events are evaluated in batches of about this many hits: vectorised, with bounded memory.
BATCH_HITS = 2_000_000

EVALUATION_DEFAULTS = {
    **DEFAULT_CUTS,
    "bootstrap": 1000,
    "seed": 0,
    "ci": 0.68,
    "timing_warmup": 1,
    "variables": ("pt", "eta", "phi", "vz"),
    "bins": None,
    "pixel_only": None,
    "fig4_pt_min": PAPER_CUTS["pt_min"],
    "fig4_max_eta": PAPER_CUTS["max_eta"],
    "fig4_min_track_hits": PAPER_CUTS["min_track_hits"],
}

_TABLE_KEEP = {
    "particles": ["event_id", "reconstructable", "pt", "eta", "phi", "vz", "selected", "dm_matched", "perfect_matched"],
    "clusters": ["event_id", "valid", "reconstructable", "pt", "eta", "phi", "vz", "selected", "dm_match",
                 "perfect_match", "lhc_match", "duplicate"],
    "fit": ["event_id", "weight", "good_weight", "pt", "eta", "phi", "vz"],
    "tracks": ["event_id", "counted", "matched", "pt", "eta", "phi", "vz"],
}


@dataclass
class Evaluation:
    """Result of `evaluate_submission`: headline metrics, per-event rows, and the (trimmed) particle and
    cluster match tables used for binning."""

    metrics: dict
    per_event: pd.DataFrame
    particles: pd.DataFrame
    clusters: pd.DataFrame
    #: The tables of `metrics.binning.paper_tables` (Fig. 4's FitAccuracy and fake rate).
    fit: pd.DataFrame | None = None
    tracks: pd.DataFrame | None = None


@dataclass
class TruthSource:
    """Events to evaluate against plus the two facts that choose the metrics' variants."""

    event_ids: list[int]
    read_event: object  # callable event_id -> Event
    has_momentum: bool
    has_strips: bool
    path: Path


def open_truth(path) -> TruthSource:
    """An event store directory (has manifest.json) or a TrackML directory / zip; DataError naming it
    when it has no truth."""
    path = Path(path)
    if (path / "manifest.json").is_file():
        store = EventStore(path)
        store.require_truth("scoring")
        return TruthSource([int(e) for e in store.event_ids], store.read_event, _store_has_momentum(store),
                           _store_has_strips(store), path)
    source = TrackMLSource(path)
    if not source.has_truth:
        raise DataError("scoring needs truth, but these TrackML events have neither truth nor particles files",
                        file=path)
    events = {eid: source.read_event(eid, with_cells=False) for eid in source.event_ids}
    has_momentum = any(_has_momentum(ev.particles) for ev in events.values())
    has_strips = any(ev.hits.volume_id.isin(STRIP_VOLUMES).any() for ev in events.values())
    return TruthSource(list(events), events.__getitem__, has_momentum, has_strips, path)


def _has_momentum(particles: pd.DataFrame) -> bool:
    return bool(len(particles)) and bool((particles[["px", "py", "pz"]].to_numpy() != 0).any())


def _store_has_momentum(store: EventStore) -> bool:
    f = pq.ParquetFile(store.path / "particles.parquet")
    return any(_has_momentum(b.to_pandas()) for b in f.iter_batches(columns=["px", "py", "pz"]))


def _store_has_strips(store: EventStore) -> bool:
    f = pq.ParquetFile(store.path / "hits.parquet")
    return any(np.isin(b.column(0).to_numpy(), STRIP_VOLUMES).any() for b in f.iter_batches(columns=["volume_id"]))


def _batches(truth: TruthSource, event_ids):
    """Lists of events holding about BATCH_HITS hits each."""
    batch, n = [], 0
    for eid in event_ids:
        ev = truth.read_event(eid)
        batch.append(ev)
        n += len(ev.hits)
        if n >= BATCH_HITS:
            yield batch
            batch, n = [], 0
    if batch:
        yield batch


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)


def _is_pixel_only(hits: pd.DataFrame, submission: pd.DataFrame) -> bool:
    """Whether the submission holds exactly the pixel hits of `hits` (and no strip hit)."""
    pixel = hits.loc[hits.volume_id.isin(PIXEL_VOLUMES), ["event_id", "hit_id"]]
    if len(submission) != len(pixel):
        return False
    inside = submission[["event_id", "hit_id"]].merge(pixel, how="inner", on=["event_id", "hit_id"])
    return len(inside) == len(pixel)


def _evaluate_batch(events: list[Event], submission: pd.DataFrame, *, has_strips: bool, pixel_only: bool, cuts,
                    min_track_hits: int = PAPER_CUTS["min_track_hits"]):
    hits = _concat([ev.hits for ev in events])
    particles = _concat([ev.particles for ev in events])
    event_ids = np.array([ev.event_id for ev in events], dtype=np.int64)
    index = pd.Index(event_ids, name="event_id")
    columns = {}
    if has_strips and "tz" in hits.columns:
        pixel_truth = restricted_truth(hits, particles)
        pixel_sub = restrict_submission(submission, hits, pixel_truth)
        columns["trackml_score_pixel"] = trackml_score_per_event(pixel_truth, pixel_sub).reindex(index)
    elif has_strips:
        # Weights of the restricted truth order each particle's hits by their simulated z (tz); files
        # without it (TrackFormers' reduced-TrackML CSV) get no pixel-restricted score, not a guessed one.
        log.warning("the truth has no simulated hit positions (tz): trackml_score_pixel is not computed")
        pixel_sub = restrict_submission(submission, hits, hits.loc[hits.volume_id.isin(PIXEL_VOLUMES)])
        columns["trackml_score_pixel"] = pd.Series(np.nan, index=index)
    if has_strips and pixel_only:
        hits = hits[hits.volume_id.isin(PIXEL_VOLUMES)].reset_index(drop=True)
        submission = pixel_sub
        columns["trackml_score"] = pd.Series(np.nan, index=index)
    else:
        columns["trackml_score"] = trackml_score_per_event(hits, submission).reindex(index)
    columns["fit_accuracy"] = fit_accuracy_per_event(hits, submission).reindex(index)
    ptab, ctab = match_tables(hits, particles, submission, **cuts)
    fit, tracks = paper_tables(hits, particles, submission, min_track_hits=min_track_hits)
    counts = count_matches(ptab, ctab, event_ids=event_ids)
    sizes = pd.DataFrame({
        "n_hits": hits.groupby("event_id").size(),
        "n_particles": ptab.groupby("event_id").size(),
        "n_tracks": submission.groupby("event_id").track_id.nunique(),
    }).reindex(index).fillna(0).astype(np.int64)
    order = [k for k in ("trackml_score", "trackml_score_pixel", "fit_accuracy") if k in columns]
    per_event = pd.DataFrame({k: columns[k] for k in order}, index=index).join(rates(counts)).join(counts).join(sizes)
    return (per_event, ptab[_TABLE_KEEP["particles"]], ctab[_TABLE_KEEP["clusters"]], fit[_TABLE_KEEP["fit"]],
            tracks[_TABLE_KEEP["tracks"]])


def evaluate_submission(truth, submission, *, pt_min=DEFAULT_CUTS["pt_min"], max_eta=DEFAULT_CUTS["max_eta"],
                        min_cluster_size=DEFAULT_CUTS["min_cluster_size"], min_layers=DEFAULT_CUTS["min_layers"],
                        duplicate_purity=DEFAULT_CUTS["duplicate_purity"], pixel_only=None,
                        fig4_min_track_hits: int = PAPER_CUTS["min_track_hits"]) -> Evaluation:
    """All metrics of `submission` (a CSV path or a DataFrame event_id, hit_id, track_id) against `truth`
    (an event store or TrackML directory path, or a `TruthSource`). See the module docstring.

    `pt_min` / `max_eta` may be None (no cut); they are ignored for REDVID-like truth. A `truth`
    without truth (a truth-less store or TrackML directory) is refused with a DataError naming it.
    """
    truth = truth if isinstance(truth, TruthSource) else open_truth(truth)
    sub_file = submission if isinstance(submission, (str, Path)) else "<submission>"
    if not isinstance(submission, pd.DataFrame):
        submission = read_submission(submission)
    unknown = np.setdiff1d(submission.event_id.unique(), truth.event_ids)
    if len(unknown):
        raise DataError(f"{len(unknown)} submitted event(s) are not in the truth at {truth.path}",
                        file=sub_file, event=int(unknown[0]), column="event_id")
    if not truth.has_momentum:
        pt_min = max_eta = None
    cuts = {"pt_min": pt_min, "max_eta": max_eta, "min_cluster_size": min_cluster_size, "min_layers": min_layers,
            "duplicate_purity": duplicate_purity}
    rows_of_event = submission.groupby("event_id", sort=False).indices
    empty = np.empty(0, np.int64)
    parts = []
    try:
        for events in _batches(truth, truth.event_ids):
            rows = np.concatenate([rows_of_event.get(ev.event_id, empty) for ev in events])
            sub = submission.iloc[np.sort(rows)].reset_index(drop=True)
            if pixel_only is None:
                pixel_only = truth.has_strips and _is_pixel_only(_concat([ev.hits for ev in events]), sub)
            parts.append(_evaluate_batch(events, sub, has_strips=truth.has_strips, pixel_only=bool(pixel_only),
                                         cuts=cuts, min_track_hits=fig4_min_track_hits))
    except DataError as e:
        if e.file is not None:
            raise
        raise DataError(e.reason, file=sub_file, event=e.event, column=e.column) from None
    per_event = pd.concat([p[0] for p in parts]).reset_index()
    particles = pd.concat([p[1] for p in parts], ignore_index=True)
    clusters = pd.concat([p[2] for p in parts], ignore_index=True)
    fit = pd.concat([p[3] for p in parts], ignore_index=True)
    tracks = pd.concat([p[4] for p in parts], ignore_index=True)
    metrics = _headline(per_event, truth, cuts, bool(pixel_only) and truth.has_strips)
    return Evaluation(metrics, per_event, particles, clusters, fit, tracks)


def _headline(per_event: pd.DataFrame, truth: TruthSource, cuts: dict, pixel_only: bool) -> dict:
    counters = [c for c in per_event.columns if c.startswith("n_")]
    totals = per_event[counters].sum()
    scores = ["trackml_score", "fit_accuracy"] + (["trackml_score_pixel"] if truth.has_strips else [])
    out = {k: _mean_or_none(per_event[k]) for k in scores}
    out |= {k: _none_if_nan(v) for k, v in rates(totals).items()}
    out |= {k: int(v) for k, v in totals.items()}
    out |= {"truth": True, "n_events": int(len(per_event)), **cuts, "pixel_only": pixel_only,
            "hit_set": "pixel volumes 7, 8, 9" if pixel_only else "all hits of the truth",
            "selection": _selection_text(cuts, truth.has_momentum),
            # The paper's headline per level: FitAccuracy where the truth has no momenta (REDVID), the
            # TrackML score otherwise; the tables read it instead of guessing from the dataset's name.
            "headline": "trackml_score" if truth.has_momentum else "fit_accuracy"}
    return out


def _selection_text(cuts: dict, has_momentum: bool) -> str:
    if not has_momentum:
        return NO_MOMENTUM_SELECTION
    parts = []
    if cuts["pt_min"] is not None:
        parts.append(f"pT >= {cuts['pt_min']:g} GeV")
    if cuts["max_eta"] is not None:
        parts.append(f"|eta| < {cuts['max_eta']:g}")
    parts.append(f"reconstructable (>= {cuts['min_layers']} layers), clusters >= {cuts['min_cluster_size']} hits")
    return ", ".join(parts)


def fig4_selection_text(cuts: dict, has_momentum: bool = True) -> str:
    """What Fig. 4's FitAccuracy and fake rate count, in words (written in the figure's caption)."""
    parts = [f"tracks >= {cuts['min_track_hits']} hits"]
    if has_momentum and cuts.get("pt_min") is not None:
        parts.append(f"pT >= {cuts['pt_min']:g} GeV")
    if has_momentum and cuts.get("max_eta") is not None:
        parts.append(f"|eta| < {cuts['max_eta']:g}")
    if len(parts) == 1:
        parts.append("no pT or eta cut" if has_momentum else NO_MOMENTUM_SELECTION)
    return ", ".join(parts)


def _none_if_nan(v):
    return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else v


def _mean_or_none(s: pd.Series):
    s = s.dropna()
    return float(s.mean()) if len(s) else None


def score_submission(truth, submission, **options) -> dict:
    """Headline metrics (the `metrics.json` keys, without timing) of a submission; `options` as in
    `evaluate_submission`."""
    return evaluate_submission(truth, submission, **options).metrics


def read_timing(path) -> pd.DataFrame:
    """The per-event timing CSV written by predict: event_id, n_hits, device_ms, host_cpu_ms, wall_ms."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such timing file", file=path)
    df = pd.read_csv(path)
    missing = [c for c in ("event_id", *TIMING_COLUMNS) if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s); found {list(df.columns)}", file=path, column=", ".join(missing))
    for c in TIMING_COLUMNS:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def timing_metrics(timing: pd.DataFrame, *, warmup: int) -> dict:
    """`<column>_median`, `_p90`, `_mean` per timing column after `warmup` events, and their count."""
    out = {}
    n = 0
    for c in TIMING_COLUMNS:
        s = timing_summary(timing[c].to_numpy(), warmup=warmup)
        out |= {f"{c}_{k}": _none_if_nan(s[k]) for k in ("median", "p90", "mean")}
        n = max(n, s["n"])
    out |= {"timing_n_events": n, "timing_warmup": int(warmup)}
    if "device" in timing.columns and len(timing):
        # Where the forward pass ran: "cuda" means device_ms is GPU time (report tables mark CPU times).
        out["device"] = ",".join(sorted(set(timing["device"].astype(str))))
    if "attention" in timing.columns and len(timing):
        # The attention computation the network actually ran (predict.attention_used), e.g. a flash model's
        # sdpa fallback on CPU: the tables mark such results instead of presenting them as separate findings.
        out["attention"] = " | ".join(sorted(set(timing["attention"].astype(str))))
    return out


def prediction_timing_summary(timing: pd.DataFrame) -> dict:
    """What predict reports: the number of timed events and `timing_metrics` with no warm-up left out
    (predictors never time their warm-up passes)."""
    return {"n_events": int(len(timing)), **timing_metrics(timing, warmup=0)}


def evaluate(store_path, submission_path, out_dir, *, timing_path=None, pt_min=DEFAULT_CUTS["pt_min"],
             max_eta=DEFAULT_CUTS["max_eta"], bootstrap: int = EVALUATION_DEFAULTS["bootstrap"], seed: int = 0,
             pixel_only=None, ci: float = EVALUATION_DEFAULTS["ci"], min_cluster_size=DEFAULT_CUTS["min_cluster_size"],
             min_layers=DEFAULT_CUTS["min_layers"], duplicate_purity=DEFAULT_CUTS["duplicate_purity"],
             timing_warmup: int = EVALUATION_DEFAULTS["timing_warmup"], variables=EVALUATION_DEFAULTS["variables"],
             bins=None, fig4_pt_min=PAPER_CUTS["pt_min"], fig4_max_eta=PAPER_CUTS["max_eta"],
             fig4_min_track_hits: int = PAPER_CUTS["min_track_hits"]) -> dict:
    """Evaluate `submission_path` against the truth at `store_path`; write metrics.json,
    per_event.parquet and binned.parquet into `out_dir` (see the module docstring). Returns the metrics.

    `bootstrap`: resamples for the binned intervals (`ci`, default 68 %), seeded with `seed`;
    `variables` / `bins`: what to bin in (defaults `metrics.binning.DEFAULT_BINS`);
    `timing_path`: optional per-event timing CSV, its first `timing_warmup` events are left out.
    `fig4_*`: the selection of the paper's binned FitAccuracy and fake rate (`metrics.binning`).
    A store without truth is refused with a DataError naming it (`open_truth`); the workflow calls
    `evaluate_for_workflow`, which marks such a store instead.
    """
    truth = open_truth(store_path)
    result = evaluate_submission(truth, submission_path, pt_min=pt_min, max_eta=max_eta,
                                 min_cluster_size=min_cluster_size, min_layers=min_layers,
                                 duplicate_purity=duplicate_purity, pixel_only=pixel_only,
                                 fig4_min_track_hits=fig4_min_track_hits)
    metrics, per_event = dict(result.metrics), result.per_event
    paper_cuts = {"pt_min": fig4_pt_min, "max_eta": fig4_max_eta, "min_track_hits": int(fig4_min_track_hits)}
    if not truth.has_momentum:
        paper_cuts |= {"pt_min": None, "max_eta": None}
    if timing_path is not None:
        timing = read_timing(timing_path)
        metrics |= timing_metrics(timing, warmup=timing_warmup)
        per_event = per_event.merge(timing[["event_id", *TIMING_COLUMNS]], how="left", on="event_id")
    binned = binned_rates(result.particles, result.clusters,
                          variables=tuple(variables) if truth.has_momentum else (),
                          bins={**DEFAULT_BINS, **(bins or {})}, pt_min=metrics["pt_min"], max_eta=metrics["max_eta"],
                          n_resamples=bootstrap, seed=seed, ci=ci, event_ids=per_event.event_id.to_numpy(),
                          fit=result.fit, tracks=result.tracks, paper_cuts=paper_cuts)
    metrics |= {"bootstrap": int(bootstrap), "seed": int(seed), "ci": float(ci),
                **{f"fig4_{k}": v for k, v in paper_cuts.items()},
                "fig4_selection": fig4_selection_text(paper_cuts, truth.has_momentum)}
    _write_outputs(out_dir, metrics, per_event, binned)
    return metrics


def _write_outputs(out_dir, metrics: dict, per_event: pd.DataFrame, binned: pd.DataFrame) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(out_dir / "per_event.parquet", per_event)
    write_parquet(out_dir / "binned.parquet", binned)
    write_json(out_dir / "metrics.json", metrics)


def evaluate_for_workflow(store_path, submission_path, out_dir, *, timing_path=None, **options) -> dict:
    """The workflow's evaluate step: `evaluate` on a store with truth; on a store without truth (e.g.
    TrackML Kaggle test events) `evaluate_without_truth`, so such a dataset still has its three output
    files, its timing in Table 2 and "no truth" in Table 1. `options`: `evaluate`'s keyword arguments
    (the config's evaluate section); without truth only `timing_warmup` applies."""
    if not EventStore(store_path).has_truth:
        return evaluate_without_truth(store_path, submission_path, out_dir, timing_path=timing_path,
                                      timing_warmup=options.get("timing_warmup", EVALUATION_DEFAULTS["timing_warmup"]))
    return evaluate(store_path, submission_path, out_dir, timing_path=timing_path, **options)


#: binned.parquet's columns and dtypes (as `metrics.binning.binned_rates` writes them).
BINNED_DTYPES = {"metric": "object", "variable": "object", "lo_edge": "float64", "hi_edge": "float64",
                 "value": "float64", "ci_lo": "float64", "ci_hi": "float64", "n": "int64"}


def evaluate_without_truth(store_path, submission_path, out_dir, *, timing_path=None,
                           timing_warmup: int = EVALUATION_DEFAULTS["timing_warmup"]) -> dict:
    """The outputs of `evaluate` for a store without truth, marked so: `metrics.json` with
    ``"truth": false``, `n_events`, `n_hits`, `n_tracks` and the timing metrics (no score, efficiency or
    rate: there is nothing to compare with); `per_event.parquet` with event_id, n_hits, n_tracks and the
    timing columns; `binned.parquet` empty, with its usual columns. The submission is checked against the
    store (its events and hits must be the store's). DataError if the store has truth (use `evaluate`).
    """
    store = EventStore(store_path)
    if store.has_truth:
        raise DataError("the store has truth: evaluate it with evaluate(), not evaluate_without_truth()",
                        file=store.path)
    sub_file = submission_path if isinstance(submission_path, (str, Path)) else "<submission>"
    if isinstance(submission_path, (str, Path)):
        submission = read_submission(submission_path)
    else:
        submission = submission_path
        check_submission(submission)
    hits = store.hits(columns=["event_id", "hit_id"])
    inside = submission[["event_id", "hit_id"]].merge(hits, how="left", on=["event_id", "hit_id"], indicator=True)
    outside = inside._merge != "both"
    if outside.any():
        first = inside[outside].iloc[0]
        raise DataError(f"{int(outside.sum())} submitted hit(s) are not in the store at {store.path} (first: hit "
                        f"{int(first.hit_id)})", file=sub_file, event=int(first.event_id), column="hit_id")
    index = pd.Index(store.event_ids.astype(np.int64), name="event_id")
    per_event = pd.DataFrame({
        "n_hits": store.index.n_hits.to_numpy(np.int64),
        "n_tracks": submission.groupby("event_id").track_id.nunique().reindex(index).fillna(0).to_numpy(np.int64),
    }, index=index).reset_index()
    metrics = {"truth": False, "n_events": int(len(per_event)), "n_hits": int(per_event.n_hits.sum()),
               "n_tracks": int(per_event.n_tracks.sum()),
               "selection": "none (no truth: the events were predicted and timed, not scored)"}
    if timing_path is not None:
        timing = read_timing(timing_path)
        metrics |= timing_metrics(timing, warmup=timing_warmup)
        per_event = per_event.merge(timing[["event_id", *TIMING_COLUMNS]], how="left", on="event_id")
    binned = pd.DataFrame({c: pd.Series(dtype=t) for c, t in BINNED_DTYPES.items()})
    _write_outputs(out_dir, metrics, per_event, binned)
    return metrics


__all__ = ["EVALUATION_DEFAULTS", "Evaluation", "TruthSource", "evaluate", "evaluate_for_workflow",
           "evaluate_submission", "evaluate_without_truth", "open_truth", "prediction_timing_summary", "read_timing",
           "score_submission", "timing_metrics"]
