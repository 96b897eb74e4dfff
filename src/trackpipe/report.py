"""Glue between result files and the tables and figures: find what exists, draw what can be drawn.

:func:`collect_results` scans a results directory (layout below) and loads the small files;
:func:`make_all` writes every table and figure it has data for and records each gap in
``<tables>/missing.json``. The ``make_*`` functions are the per-figure API for separate Snakemake
rules: each takes the collected results and one output path (a stem: ``.png`` and ``.pdf`` are
written) and returns the written paths, or ``[]`` after logging a notice when its input is missing.
A missing input is never an error and never replaced by an invented value; malformed input is a
:class:`~trackpipe.errors.DataError` naming the file. A (dataset, model) whose metrics.json says
``"truth": false`` (test events without truth) is left out of the figures that need truth (Fig. 4:
binned efficiencies; Fig. 5: particles per event) with the gap "no truth"; Tables 1-2 and Fig. 6 show
its timing and "no truth" for its score.

Layout read (all optional)::

    eval/{dataset}/{model}/metrics.json, per_event.parquet, binned.parquet, encdec_protocol.json
    predict/{dataset}/{model}/timing.csv, posteriors.parquet, submission.csv
    data/{dataset}/test                       event store (event display)
    locality/{dataset}/clustering.json, latency.json
    bench/scaling.csv

Config section (``report``, all keys optional)::

    fig4_metrics: [fit_accuracy, track_fake_rate]   # rows of Fig. 4 (binned metric names: the paper's)
    fig4_extra_metrics: [dm_efficiency, fake_rate]  # gnn_tracking rates: efficiency_gnn_tracking_{dataset}
    fig4_variables: [pt, eta]                  # columns of Fig. 4
    fig4_min_entries: 10                       # bins with fewer particles/tracks are drawn grey
    fig5_time: device_ms                       # timing.csv column of Fig. 5
    posterior_hits: 4                          # hits shown in Fig. 7
    locality_models: [contrastive]             # models drawn in the locality efficiency figure
    event_display_models: null                 # null: every model with a submission
    event_display_event: null                  # null: the smallest event id of the submission
    max_colours: 20                            # distinct track colours in the event display
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from . import tables
from .errors import ConfigError, DataError
from .io.atomic import write_json
from .plots.complexity import plot_complexity
from .metrics.binning import BINNED_COLUMNS, PAPER_METRICS
from .plots.efficiency import plot_binned
from .plots.event_display import plot_event_display
from .plots.posterior import POSTERIOR_COLUMNS, plot_posteriors
from .plots.scaling import SCALING_COLUMNS, plot_scaling
from .plots.style import output_paths, require_columns
from .plots.timing import plot_time_vs_tracks
from .schema import TIMING

log = logging.getLogger(__name__)

DEFAULTS = {
    "fig4_metrics": ["fit_accuracy", "track_fake_rate"],
    "fig4_extra_metrics": ["dm_efficiency", "fake_rate"],
    "fig4_variables": ["pt", "eta"],
    "fig4_min_entries": 10,
    "fig5_time": "device_ms",
    "posterior_hits": 4,
    "locality_models": ["contrastive"],
    "event_display_models": None,
    "event_display_event": None,
    "max_colours": 20,
}
TIMING_COLUMNS = tuple(c for c in TIMING.names if c != "device")  # older files have no device column

# Files looked for per (dataset, model), by the key they get in collect_results' output.
_PAIR_FILES = {
    "binned": "eval/{d}/{m}/binned.parquet",
    "per_event": "eval/{d}/{m}/per_event.parquet",
    "timing": "predict/{d}/{m}/timing.csv",
    "posteriors": "predict/{d}/{m}/posteriors.parquet",
    "submission": "predict/{d}/{m}/submission.csv",
}


class Gaps:
    """The list of things that could not be made, each with the reason; logged as they are found."""

    def __init__(self):
        self.items: list[dict] = []

    def add(self, item: str, reason: str, **where) -> None:
        entry = {"item": item, **{k: v for k, v in where.items() if v is not None}, "reason": reason}
        log.info("skipping %s: %s", " ".join(f"{k}={v}" for k, v in entry.items() if k != "reason"), reason)
        self.items.append(entry)


def _gaps(gaps: Gaps | None) -> Gaps:
    return Gaps() if gaps is None else gaps


def read_json(path) -> dict:
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"not valid JSON: {e}", file=path) from None
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, found {type(obj).__name__}", file=path)
    return obj


def read_table(path, columns) -> pd.DataFrame:
    """A Parquet or CSV file with at least `columns`, else DataError naming the file."""
    path = Path(path)
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as e:  # pyarrow/pandas raise many types for a corrupt file; all mean bad input here
        raise DataError(f"cannot read table: {e}", file=path) from None
    require_columns(df, columns, what=str(path))
    return df


def collect_results(results_dir) -> dict:
    """Find every result file under `results_dir` and load the metrics.

    Returns ``{"root", "metrics": {(dataset, model): dict}, "binned" | "per_event" | "timing" |
    "posteriors" | "submission": {(dataset, model): Path}, "stores": {dataset: Path},
    "clustering" | "latency": {dataset: dict}, "encdec_protocol": {(dataset, model): dict},
    "scaling": Path | None, "datasets", "models"}`` where the last two list every name seen, in the
    paper's order.
    """
    root = Path(results_dir)
    found = {"root": root, "metrics": {}, "encdec_protocol": {}, **{k: {} for k in _PAIR_FILES}, "stores": {},
             "clustering": {}, "latency": {}, "scaling": None}
    for key in ("metrics", "encdec_protocol"):
        for path in sorted(root.glob(f"eval/*/*/{key}.json")):
            found[key][(path.parts[-3], path.parts[-2])] = read_json(path)
    for key, pattern in _PAIR_FILES.items():
        for path in sorted(root.glob(pattern.format(d="*", m="*"))):
            found[key][(path.parts[-3], path.parts[-2])] = path
    for path in sorted(root.glob("data/*/test")):
        if path.is_dir():
            found["stores"][path.parts[-2]] = path
    for name in ("clustering", "latency"):
        for path in sorted(root.glob(f"locality/*/{name}.json")):
            found[name][path.parts[-2]] = read_json(path)
    scaling = root / "bench" / "scaling.csv"
    found["scaling"] = scaling if scaling.is_file() else None
    pairs = set(found["metrics"]).union(*(found[k] for k in _PAIR_FILES))
    found["datasets"] = tables.order_names({d for d, _ in pairs}, tables.DATASET_ORDER)
    found["models"] = tables.order_names({m for _, m in pairs}, tables.MODEL_ORDER)
    return found


# --- tables ----------------------------------------------------------------------------------------

def _record_not_run(results, datasets, models, item, gaps) -> None:
    for d in datasets:
        for m in models:
            if (d, m) not in results["metrics"]:
                gaps.add(item, "not run (no metrics.json)", dataset=d, model=m)


def make_table1(results: dict, out_dir, *, datasets=None, models=None, gaps: Gaps | None = None) -> list[Path]:
    datasets = results["datasets"] if datasets is None else list(datasets)
    models = results["models"] if models is None else list(models)
    _record_not_run(results, datasets, models, "table1", _gaps(gaps))
    return tables.write_table(tables.table1(results["metrics"], datasets, models), out_dir)


def make_table2(results: dict, out_dir, *, datasets=None, models=None, gaps: Gaps | None = None) -> list[Path]:
    datasets = results["datasets"] if datasets is None else list(datasets)
    models = results["models"] if models is None else list(models)
    _record_not_run(results, datasets, models, "table2", _gaps(gaps))
    return tables.write_table(tables.table2(results["metrics"], datasets, models), out_dir)


def make_encdec_table(results: dict, out_dir, *, datasets=None, models=None,
                      gaps: Gaps | None = None) -> list[Path]:
    """The EncDec protocol table for the given EncDec `models` (default: those with a protocol file)."""
    protocol = results["encdec_protocol"]
    models = sorted({m for _, m in protocol}) if models is None else list(models)
    datasets = results["datasets"] if datasets is None else list(datasets)
    for d in datasets:
        for m in models:
            if (d, m) in results["metrics"] and (d, m) not in protocol:
                _gaps(gaps).add("table_encdec", "no encdec_protocol.json", dataset=d, model=m)
    if not any(m in models for _, m in (*protocol, *results["metrics"])):
        return []
    return tables.write_table(tables.encdec_protocol_table(protocol, results["metrics"], datasets, models), out_dir)


def make_locality_tables(results: dict, out_dir, dataset: str, *, gaps: Gaps | None = None) -> list[Path]:
    gaps, written = _gaps(gaps), []
    for name, build in (("clustering", tables.locality_clustering_table), ("latency", tables.locality_latency_table)):
        if dataset in results[name]:
            written += tables.write_table(build(results[name][dataset], dataset), out_dir)
        else:
            gaps.add(f"locality_{name}", f"no locality/{dataset}/{name}.json", dataset=dataset)
    return written


# --- figures -------------------------------------------------------------------------------------

def _pair_paths(results, key, dataset, models) -> dict[str, Path]:
    models = results["models"] if models is None else models
    return {m: results[key][(dataset, m)] for m in models if (dataset, m) in results[key]}


def _with_truth(results, paths: dict, item: str, dataset: str, gaps: Gaps, why: str) -> dict:
    """`paths` without the models whose metrics.json says the dataset has no truth (each one a gap)."""
    kept = {}
    for model, path in paths.items():
        if tables.lacks_truth(results["metrics"].get((dataset, model))):
            gaps.add(item, f"no truth ({why})", dataset=dataset, model=model)
        else:
            kept[model] = path
    return kept


def fig4_caption(results: dict, dataset: str, models, metrics) -> str:
    """The selection of `metrics` and the bootstrap behind the bands, from the models' metrics.json."""
    texts, events = set(), set()
    for model in models:
        m = results["metrics"].get((dataset, model)) or {}
        if any(k in PAPER_METRICS for k in metrics) and m.get("fig4_selection"):
            texts.add(f"FitAccuracy / fake rate: {m['fig4_selection']}")
        if any(k not in PAPER_METRICS for k in metrics) and m.get("selection"):
            texts.add(f"gnn_tracking: {m['selection']}")
        if m.get("n_events") is not None:
            events.add(int(m["n_events"]))
    parts = sorted(texts)
    if events:
        n = min(events)
        parts.append(f"bands: 68 % bootstrap over {n if len(events) == 1 else f'{n}-{max(events)}'} test events"
                     + (" (one event: no interval)" if max(events) < 2 else ""))
    return "; ".join(parts)


def make_fig4(results: dict, out, dataset: str, *, models=None, metrics=None, variables=None,
              item: str = "fig4", gaps: Gaps | None = None, min_entries: int | None = None,
              title: str | None = None) -> list[Path]:
    """Fig. 4: binned metrics vs pT and η with bootstrap bands, one line per model with a binned file.

    The caption line states the selection (metrics.json ``fig4_selection`` / ``selection``) and the
    number of events the bands were bootstrapped over; a model whose binned file lacks a metric (older
    results) is a gap, never drawn empty."""
    gaps = _gaps(gaps)
    metrics = tuple(metrics or DEFAULTS["fig4_metrics"])
    paths = _with_truth(results, _pair_paths(results, "binned", dataset, models), item, dataset, gaps,
                        "nothing to bin")
    if not paths:
        gaps.add(item, "no binned.parquet with truth for any model", dataset=dataset)
        return []
    binned = {}
    for m, p in paths.items():
        table = read_table(p, BINNED_COLUMNS)
        absent = [k for k in metrics if k not in set(table.metric)]
        if absent:
            gaps.add(item, f"binned.parquet has no {', '.join(absent)} (evaluated before they existed?)",
                     dataset=dataset, model=m)
        binned[m] = table
    variables = tuple(variables or DEFAULTS["fig4_variables"])
    if not any((t.metric.isin(metrics) & t.variable.isin(variables)).any() for t in binned.values()):
        # REDVID-like truth has no momenta: only the "all" rows exist, a figure would be empty panels.
        gaps.add(item, f"nothing binned in {', '.join(variables)} (no particle momenta, e.g. REDVID)", dataset=dataset)
        return []
    caption = fig4_caption(results, dataset, binned, metrics)
    plot_binned(binned, out, metrics=metrics, variables=variables,
                title=title or dataset, caption=caption,
                min_entries=int(DEFAULTS["fig4_min_entries"] if min_entries is None else min_entries))
    return output_paths(out)


def make_locality_efficiency(results: dict, out, dataset: str, *, models=None, variables=None,
                             gaps: Gaps | None = None) -> list[Path]:
    """The locality tracker's DM efficiency vs pT and η: Fig. 4's function on its binned file."""
    return make_fig4(results, out, dataset, models=list(models or DEFAULTS["locality_models"]),
                     metrics=["dm_efficiency"], variables=variables, item="locality_efficiency", gaps=gaps,
                     title=f"{dataset}: locality tracker")


def timing_with_tracks(timing_path, per_event_path) -> pd.DataFrame:
    """timing.csv joined with the number of particles per event from per_event.parquet."""
    timing = read_table(timing_path, TIMING_COLUMNS)
    per_event = read_table(per_event_path, ("event_id", "n_particles"))
    for df, path in ((timing, timing_path), (per_event, per_event_path)):
        if df.event_id.duplicated().any():
            raise DataError("event listed more than once", file=path,
                            event=int(df.event_id[df.event_id.duplicated()].iloc[0]), column="event_id")
    joined = timing.merge(per_event[["event_id", "n_particles"]], on="event_id", how="inner")
    if len(joined) < len(timing):
        log.info("%s: %d of %d timed events have no per-event metrics row", timing_path,
                 len(timing) - len(joined), len(timing))
    return joined


def make_fig5(results: dict, out, dataset: str, *, models=None, time_column: str | None = None,
              gaps: Gaps | None = None) -> list[Path]:
    """Fig. 5: time per event vs tracks per event, for every model with timing and per-event files."""
    gaps = _gaps(gaps)
    timing = _with_truth(results, _pair_paths(results, "timing", dataset, models), "fig5", dataset, gaps,
                         "no particle count per event")
    per_model = {}
    for model, path in timing.items():
        per_event = results["per_event"].get((dataset, model))
        if per_event is None:
            gaps.add("fig5", "timing.csv but no per_event.parquet", dataset=dataset, model=model)
            continue
        joined = timing_with_tracks(path, per_event)
        if not joined[time_column or DEFAULTS["fig5_time"]].notna().any():
            gaps.add("fig5", f"no {time_column or DEFAULTS['fig5_time']} (a tracker without a network has no "
                     "GPU side)", dataset=dataset, model=model)
            continue
        per_model[model] = joined
    if not per_model:
        gaps.add("fig5", "no model with timing.csv (with this time column) and per_event.parquet", dataset=dataset)
        return []
    plot_time_vs_tracks(per_model, out, time_column=time_column or DEFAULTS["fig5_time"], title=dataset)
    return output_paths(out)


def make_fig6(results: dict, out, *, datasets=None, models=None, gaps: Gaps | None = None) -> list[Path]:
    """Fig. 6: score and the three median times against the complexity level."""
    if not results["metrics"]:
        _gaps(gaps).add("fig6", "no metrics.json at all")
        return []
    # The x axis is the complexity level: datasets that no model was run on are not levels of this study.
    evaluated = {d for d, _ in results["metrics"]}
    levels = [d for d in (datasets or results["datasets"]) if d in evaluated]
    per_event = {}
    for pair, path in results["per_event"].items():   # per-event scores: the score's bootstrap interval
        table = read_table(path, ("event_id",))
        if not tables.lacks_truth(results["metrics"].get(pair)):
            per_event[pair] = table
    plot_complexity(results["metrics"], out, datasets=levels, models=models or results["models"],
                    per_event=per_event)
    return output_paths(out)


def make_fig7(results: dict, out, dataset: str, model: str, *, max_hits: int | None = None,
              gaps: Gaps | None = None) -> list[Path]:
    """Fig. 7: the stored softmax posteriors of a classifier for a few hits."""
    path = results["posteriors"].get((dataset, model))
    if path is None:
        _gaps(gaps).add("fig7", "no posteriors.parquet", dataset=dataset, model=model)
        return []
    plot_posteriors(read_table(path, POSTERIOR_COLUMNS), out,
                    max_hits=int(max_hits or DEFAULTS["posterior_hits"]), title=f"{model} on {dataset}")
    return output_paths(out)


def make_event_display(results: dict, out, dataset: str, model: str, *, event_id: int | None = None,
                       max_colours: int | None = None, gaps: Gaps | None = None) -> list[Path]:
    """Hits of one test event coloured by the model's predicted tracks (x–y and r–z views)."""
    from .io.store import EventStore
    from .io.submission import read_submission

    gaps = _gaps(gaps)
    sub_path, store_path = results["submission"].get((dataset, model)), results["stores"].get(dataset)
    if sub_path is None or store_path is None:
        gaps.add("event_display", "no submission.csv" if sub_path is None else "no test event store",
                 dataset=dataset, model=model)
        return []
    submission = read_submission(sub_path)
    store = EventStore(store_path)
    ids = sorted(set(submission.event_id.unique()) & set(int(e) for e in store.event_ids))
    if event_id is None:
        if not ids:
            raise DataError("no event of the submission is in the test store", file=sub_path, column="event_id")
        event_id = ids[0]
    elif int(event_id) not in ids:
        raise DataError("event not in both the submission and the test store", file=sub_path, event=event_id,
                        column="event_id")
    hits = store.read_event(int(event_id)).hits
    tracks = submission[submission.event_id == int(event_id)]
    plot_event_display(hits, tracks, out, max_colours=int(max_colours or DEFAULTS["max_colours"]),
                       title=f"{model} on {dataset}, event {int(event_id)}")
    return output_paths(out)


def make_scaling(results: dict, out, *, gaps: Gaps | None = None) -> list[Path]:
    """Scaling study: time vs hits per event with a fitted power law per model."""
    if results["scaling"] is None:
        _gaps(gaps).add("scaling", "no bench/scaling.csv")
        return []
    plot_scaling(read_table(results["scaling"], SCALING_COLUMNS), out)
    return output_paths(out)


# --- everything ----------------------------------------------------------------------------------

def make_all(results_dir, out_tables, out_figures, datasets=None, models=None,
             config: dict | None = None, encdec_models=None) -> list[Path]:
    """Write every table and figure there is data for; return the written paths.

    `datasets` / `models` (default: every name found) fix the rows and columns of Tables 1–2 and the
    axes of Fig. 6, so a configured model that never ran shows as a gap. `encdec_models` (default: every
    model with an ``encdec_protocol.json``) are the rows of ``table_encdec``. Per-dataset figures are named
    ``fig4_{dataset}`` (the paper's FitAccuracy and fake rate), ``efficiency_gnn_tracking_{dataset}`` (the
    gnn_tracking rates of ``fig4_extra_metrics``), ``fig5_{dataset}``, ``fig7_{dataset}_{model}``,
    ``locality_efficiency_{dataset}``, ``event_display_{dataset}_{model}``; plus ``fig6`` and
    ``scaling``. Gaps go to ``<out_tables>/missing.json`` (also returned among the paths).
    """
    cfg = {**DEFAULTS, **(config or {})}
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown report config key(s): {sorted(unknown)}")
    results = collect_results(results_dir)
    datasets = results["datasets"] if datasets is None else tables.order_names(datasets, tables.DATASET_ORDER)
    models = results["models"] if models is None else tables.order_names(models, tables.MODEL_ORDER)
    out_tables, out_figures = Path(out_tables), Path(out_figures)
    gaps, written = Gaps(), []

    written += make_table1(results, out_tables, datasets=datasets, models=models, gaps=gaps)
    written += make_table2(results, out_tables, datasets=datasets, models=models, gaps=gaps)
    if encdec_models is None:
        encdec_models = sorted({m for _, m in results["encdec_protocol"]})
    if encdec_models:
        written += make_encdec_table(results, out_tables, datasets=datasets, models=encdec_models, gaps=gaps)
    written += make_fig6(results, out_figures / "fig6", datasets=datasets, models=models, gaps=gaps)
    for d in datasets:
        written += make_fig4(results, out_figures / f"fig4_{d}", d, models=models, metrics=cfg["fig4_metrics"],
                             variables=cfg["fig4_variables"], gaps=gaps, min_entries=cfg["fig4_min_entries"],
                             title=f"{d}: Fig. 4")
        if cfg["fig4_extra_metrics"] and any(dd == d for dd, _ in results["binned"]):
            written += make_fig4(results, out_figures / f"efficiency_gnn_tracking_{d}", d, models=models,
                                 metrics=cfg["fig4_extra_metrics"], variables=cfg["fig4_variables"],
                                 item="efficiency_gnn_tracking", gaps=gaps, min_entries=cfg["fig4_min_entries"],
                                 title=f"{d}: gnn_tracking rates")
        written += make_fig5(results, out_figures / f"fig5_{d}", d, models=models, time_column=cfg["fig5_time"],
                             gaps=gaps)
        for m in models:
            if (d, m) in results["posteriors"]:
                written += make_fig7(results, out_figures / f"fig7_{d}_{m}", d, m, max_hits=cfg["posterior_hits"],
                                     gaps=gaps)
        display_models = models if cfg["event_display_models"] is None else cfg["event_display_models"]
        for m in display_models:
            if (d, m) in results["submission"]:
                written += make_event_display(results, out_figures / f"event_display_{d}_{m}", d, m,
                                              event_id=cfg["event_display_event"], max_colours=cfg["max_colours"],
                                              gaps=gaps)
    for d in tables.order_names(set(results["clustering"]) | set(results["latency"]), tables.DATASET_ORDER):
        written += make_locality_tables(results, out_tables, d, gaps=gaps)
    locality_datasets = {d for d, m in results["binned"] if m in cfg["locality_models"]}
    for d in tables.order_names(locality_datasets, tables.DATASET_ORDER):
        written += make_locality_efficiency(results, out_figures / f"locality_efficiency_{d}", d,
                                            models=cfg["locality_models"], gaps=gaps)
    written += make_scaling(results, out_figures / "scaling", gaps=gaps)

    missing = out_tables / "missing.json"
    write_json(missing, {"gaps": gaps.items})
    return [*written, missing]
