"""The paper's tables, built from evaluation results and written as CSV, Markdown and LaTeX.

Tables only arrange numbers that the metrics stage has already computed: nothing here computes a
metric, and a missing result is shown as a gap (``–``) with a footnote, never filled in.

Inputs are plain Python objects (``{(dataset, model): metrics_dict}`` as read from
``results/eval/{dataset}/{model}/metrics.json``), so the same functions serve Snakemake, the CLI and
the tests. Every table is a :class:`Table`; :func:`write_table` writes ``<name>.csv``, ``<name>.md``
and ``<name>.tex`` atomically.

* Table 1: score per dataset × model. REDVID datasets show ``fit_accuracy`` (the paper's FitAccuracy:
  the TrackML score with track id as particle and unit weights), every other dataset shows
  ``trackml_score``; a ``metric`` column says which one each row holds.
  A dataset whose test events have no truth (metrics.json ``"truth": false``, e.g. TrackML Kaggle test
  events) shows ``no truth`` there: its models ran and were timed, but there is nothing to score.
* Table 2: the paper's split of the cost per event: CPU side (pre/post-processing on the host: binning,
  clustering, track building; process time), GPU side (the network's forward pass; ``*`` where it ran
  on the CPU; ``CPU only`` for a tracker without a network), wall clock, and Fig. 6 (d)'s estimated
  total from max(CPU, GPU) to CPU + GPU; median with p90 in parentheses (also for datasets without
  truth).
* EncDec table: next-hit accuracy and the truth-seeded, seed-excluded scores of the paper's protocol
  beside the full-event (geometric-seed) score.
* Locality tables: the clustering comparison (per region and algorithm) and the latency breakdown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .io.atomic import write_csv, write_text
from .schema import ATTENTION_FALLBACK

#: The paper's complexity levels, in order; other datasets follow alphabetically.
DATASET_ORDER = (
    "redvid-linear-10-50",
    "redvid-helical-10-50",
    "redvid-helical-50-100",
    "trackml-10-50",
    "trackml-200-500",
)
#: Column order of the models; other models follow alphabetically.
MODEL_ORDER = ("helix-dbscan", "encdec", "enccla", "encreg", "encreg-fa", "jm", "unet", "contrastive")

GAP = "–"
NOT_RUN_NOTE = f"{GAP}: not run (no metrics.json for this dataset and model)."
NOT_AVAILABLE = "n/a"
NOT_AVAILABLE_NOTE = f"{NOT_AVAILABLE}: the model ran but its metrics.json has no value for this quantity."
NO_TRUTH = "no truth"
NO_TRUTH_NOTE = (f"{NO_TRUTH}: the dataset's test events have no truth (e.g. TrackML Kaggle test events): "
                 "predicted and timed, not scored.")
CPU_DEVICE_MARK = "*"
CPU_DEVICE_NOTE = (f"{CPU_DEVICE_MARK}: GPU-side time measured on the CPU (the network ran on the CPU: no GPU was "
                   "used for this model).")
CPU_ONLY = "CPU only"
CPU_ONLY_NOTE = (f"{CPU_ONLY}: a tracker without a network (e.g. helix-dbscan): all of its work is CPU side, it has "
                 "no GPU side.")

FALLBACK_MARK = "†"
FALLBACK_NOTE = (f"{FALLBACK_MARK}: the network ran a fallback path, not its configured one (metrics.json "
                 "'attention', e.g. flash attention without CUDA fp16/bf16 runs sdpa in fp32).")
SAME_MARK = "‡"
#: Model variants that differ from their base model only in how attention is computed: when both ran the
#: same attention computation on a dataset, the variant's numbers are the base's computation again.
VARIANT_OF = {"encreg-fa": "encreg"}

#: Table 2 rows per dataset: (metrics.json key prefix, display label): the paper's CPU side / GPU side.
TIMING_QUANTITIES = (
    ("host_cpu_ms", "CPU side ms"),
    ("device_ms", "GPU side ms"),
    ("wall_ms", "wall ms"),
)
#: Table 2's last row per dataset: Fig. 6 (d)'s range, max(CPU, GPU) to CPU + GPU of the medians.
RANGE_QUANTITY = ("total_range_ms", "total ms (range)")

#: Locality clustering table: (clustering.json key, display label, format).
#: The slides' (seed 001) columns in their order (Recon. Ratio, Track DM eff., # clusters, # tracks, Attn. matrix
#: reduction) with the two ceilings (full containment, oracle DM) after the ratio; then the time per event.
CLUSTERING_COLUMNS = (
    ("reconstructible_ratio", "recon. ratio", "{:.3f}"),
    ("full_containment", "full containment", "{:.3f}"),
    ("oracle_dm_efficiency", "oracle DM", "{:.3f}"),
    ("cluster_dm_efficiency", "track DM eff.", "{:.3f}"),
    ("n_clusters", "# clusters", "{:.0f}"),
    ("n_tracks", "# tracks", "{:.0f}"),
    ("attention_fraction", "attn. matrix reduction", "{:.6f}"),
    ("seconds_per_event", "s / event", "{:.3g}"),
)
LATENCY_ORDER = ("clustering_and_masks", "encoder_forward", "track_formation", "total")
#: Seed 004's Table 1 rows, by latency.json component.
LATENCY_LABELS = {
    "clustering_and_masks": "hit clustering & mask building",
    "encoder_forward": "transformer encoder forward pass",
    "track_formation": "track candidate formation",
    "total": "total latency",
}


@dataclass
class Table:
    """A table ready to write.

    ``data`` is the machine-readable form written to CSV (raw numbers, gap markers where no value
    exists); ``header`` and ``rows`` are the display strings for Markdown and LaTeX.
    """

    name: str
    caption: str
    header: list[str]
    rows: list[list[str]]
    data: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    #: Leading label columns (left-aligned); the rest hold numbers (right-aligned).
    n_label_columns: int = 2


def order_names(names, preferred) -> list[str]:
    """`names` (deduplicated) with the ones in `preferred` first, in that order, then the rest sorted."""
    names = set(names)
    head = [n for n in preferred if n in names]
    return head + sorted(names - set(head))


def is_redvid(dataset: str) -> bool:
    return dataset.lower().startswith("redvid")


def score_key(dataset: str, results: dict | None = None) -> str:
    """The headline score of a dataset: the paper's FitAccuracy on REDVID, the TrackML score otherwise.

    Decided by the `headline` that evaluation wrote into the dataset's metrics (from the truth itself:
    no momenta = REDVID), so a file-sourced dataset of any name gets the right metric; the dataset's
    name decides only where no metrics of it say (older results, or none yet).
    """
    for (d, _), metrics in (results or {}).items():
        if d == dataset and metrics and metrics.get("headline") in ("fit_accuracy", "trackml_score"):
            return metrics["headline"]
    return "fit_accuracy" if is_redvid(dataset) else "trackml_score"


def metric_value(metrics: dict | None, key: str) -> float | None:
    """A finite float from a metrics dict, or None when the key is absent, null or NaN."""
    if metrics is None:
        return None
    value = metrics.get(key)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def is_cpu_only(metrics: dict | None) -> bool:
    """A tracker without a network: timed (a CPU side) but no GPU-side time at all (device_ms empty)."""
    return (metrics is not None and metric_value(metrics, "device_ms_median") is None
            and metric_value(metrics, "host_cpu_ms_median") is not None)


def gpu_side_on_cpu(metrics: dict | None) -> bool:
    """Whether the GPU-side (network) time of these metrics was measured on the CPU."""
    return metrics is not None and not is_cpu_only(metrics) and metrics.get("device", "cpu") != "cuda"


def time_range(metrics: dict | None, stat: str = "median") -> tuple[float, float] | None:
    """Fig. 6 (d)'s estimate of the total time per event: (max(CPU, GPU), CPU + GPU) of the `stat` of
    the CPU side and the GPU side (the two overlap at best, run one after the other at worst); a CPU-only
    tracker's total is its CPU side. None without the numbers."""
    cpu = metric_value(metrics, f"host_cpu_ms_{stat}")
    if cpu is None:
        return None
    if is_cpu_only(metrics):
        return cpu, cpu
    gpu = metric_value(metrics, f"device_ms_{stat}")
    return None if gpu is None else (max(cpu, gpu), cpu + gpu)


def attention_computation(metrics: dict | None) -> str | None:
    """The attention computation a result ran (metrics.json 'attention' without the fallback remark)."""
    if not metrics or not metrics.get("attention"):
        return None
    return " | ".join(sorted({a.split(" (")[0].strip() for a in str(metrics["attention"]).split(" | ")}))


def same_computation_as(results: dict, dataset: str, model: str) -> str | None:
    """The base model whose computation `model`'s result on `dataset` repeats (`VARIANT_OF`), or None."""
    base = VARIANT_OF.get(model)
    if base is None:
        return None
    mine, theirs = (attention_computation(results.get((dataset, m))) for m in (model, base))
    return base if mine is not None and mine == theirs else None


def lacks_truth(metrics: dict | None) -> bool:
    """Whether a metrics.json is that of a store without truth (``"truth": false``; older files: no)."""
    return metrics is not None and metrics.get("truth", True) is False


def _axes(results: dict, datasets, models) -> tuple[list[str], list[str]]:
    datasets = order_names(datasets if datasets is not None else {d for d, _ in results}, DATASET_ORDER)
    models = order_names(models if models is not None else {m for _, m in results}, MODEL_ORDER)
    return datasets, models


class _Notes:
    """Collects the footnotes a table actually needs, in a fixed order."""

    def __init__(self):
        self.used: set[str] = set()
        self.same: dict[str, set[str]] = {}

    def marks(self, results: dict, dataset: str, model: str) -> str:
        """``†`` for a fallback path, ``‡`` for a repeat of another model's computation (noted once)."""
        metrics = results.get((dataset, model))
        out = ""
        if metrics and ATTENTION_FALLBACK in str(metrics.get("attention", "")):
            out += FALLBACK_MARK
            self.used.add(FALLBACK_NOTE)
        base = same_computation_as(results, dataset, model)
        if base is not None:
            out += SAME_MARK
            self.same.setdefault(f"{model}|{base}|{attention_computation(metrics)}", set()).add(dataset)
        return out

    def same_notes(self) -> list[str]:
        return [f"{SAME_MARK}: {model} ran the same computation as {base} ({computation} attention) on "
                f"{', '.join(sorted(datasets))}: not an independent result."
                for key, datasets in sorted(self.same.items()) for model, base, computation in [key.split("|")]]

    def cell(self, metrics: dict | None, value: float | None, fmt, *, needs_truth: bool = False) -> str:
        """The display string; `needs_truth`: the quantity is a score, shown as ``no truth`` without one."""
        if metrics is None:
            self.used.add(NOT_RUN_NOTE)
            return GAP
        if needs_truth and lacks_truth(metrics):
            self.used.add(NO_TRUTH_NOTE)
            return NO_TRUTH
        if value is None:
            self.used.add(NOT_AVAILABLE_NOTE)
            return NOT_AVAILABLE
        return fmt(value)

    def ordered(self, extra=()) -> list[str]:
        return [n for n in (NOT_RUN_NOTE, NO_TRUTH_NOTE, NOT_AVAILABLE_NOTE, CPU_DEVICE_NOTE, CPU_ONLY_NOTE,
                            FALLBACK_NOTE) if n in self.used] + self.same_notes() + list(extra)


def _raw(metrics: dict | None, value: float | None, *, needs_truth: bool = False):
    """CSV cell: the exact value, or the same gap marker the display uses."""
    if metrics is None:
        return GAP
    if needs_truth and lacks_truth(metrics):
        return NO_TRUTH
    return NOT_AVAILABLE if value is None else value


def table1(results: dict, datasets=None, models=None) -> Table:
    """Table 1: score per dataset × model (FitAccuracy on REDVID datasets, TrackML score otherwise).

    `results` maps ``(dataset, model)`` to the dict read from its metrics.json; a pair absent from it
    was not run and shows ``–``; one whose metrics say ``"truth": false`` shows ``no truth``.
    `datasets`/`models` fix which rows/columns appear (default: every
    name in `results`), always in the paper's order.
    """
    datasets, models = _axes(results, datasets, models)
    notes = _Notes()
    rows, records = [], []
    for dataset in datasets:
        key = score_key(dataset, results)
        row, record = [dataset, key], {"dataset": dataset, "metric": key}
        for model in models:
            metrics = results.get((dataset, model))
            value = metric_value(metrics, key)
            row.append(notes.cell(metrics, value, lambda v, d=dataset, m=model: f"{v:.3f}{notes.marks(results, d, m)}",
                                  needs_truth=True))
            record[model] = _raw(metrics, value, needs_truth=True)
        rows.append(row)
        records.append(record)
    caption = ("Track reconstruction score per dataset and model. REDVID rows: FitAccuracy (the TrackML "
               "score with unit hit weights and the track id as particle, metric fit_accuracy); other rows: "
               "TrackML score (metric trackml_score).")
    return Table("table1", caption, ["dataset", "metric", *models], rows,
                 pd.DataFrame.from_records(records, columns=["dataset", "metric", *models]), notes.ordered())


def _fmt_ms(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table2(results: dict, datasets=None, models=None) -> Table:
    """Table 2: cost per event per dataset × model, median (p90) in milliseconds, split as in the paper.

    Four rows per dataset: the CPU side (host process time of pre/post-processing), the GPU side (the
    network: GPU time with CUDA events; marked ``*`` when it ran on the CPU; ``CPU only`` for a tracker
    without a network), wall clock, and Fig. 6 (d)'s estimated total from max(CPU, GPU) to CPU + GPU
    (medians). The CSV has one row per dataset, quantity and statistic (median, p90; for the range
    range_lo, range_hi) with the exact values.
    """
    datasets, models = _axes(results, datasets, models)
    notes = _Notes()
    rows, records = [], []
    for dataset in datasets:
        for prefix, label in TIMING_QUANTITIES:
            row = [dataset, label]
            stats = {s: {"dataset": dataset, "quantity": prefix, "statistic": s} for s in ("median", "p90")}
            for model in models:
                metrics = results.get((dataset, model))
                median = metric_value(metrics, f"{prefix}_median")
                p90 = metric_value(metrics, f"{prefix}_p90")
                mark = ""
                if prefix == "device_ms" and gpu_side_on_cpu(metrics):
                    mark = CPU_DEVICE_MARK
                    notes.used.add(CPU_DEVICE_NOTE)

                if prefix == "device_ms":
                    mark += notes.marks(results, dataset, model)

                def fmt(m, p90=p90, mark=mark):
                    return f"{_fmt_ms(m)}{mark}" + ("" if p90 is None else f" ({_fmt_ms(p90)})")

                if prefix == "device_ms" and is_cpu_only(metrics):
                    notes.used.add(CPU_ONLY_NOTE)
                    row.append(CPU_ONLY)
                    stats["median"][model] = stats["p90"][model] = CPU_ONLY
                    continue
                row.append(notes.cell(metrics, median, fmt))
                stats["median"][model] = _raw(metrics, median)
                stats["p90"][model] = _raw(metrics, p90)
            rows.append(row)
            records.extend(stats.values())
        prefix, label = RANGE_QUANTITY
        row = [dataset, label]
        stats = {s: {"dataset": dataset, "quantity": prefix, "statistic": s} for s in ("range_lo", "range_hi")}
        for model in models:
            metrics = results.get((dataset, model))
            bounds = time_range(metrics)
            mark = CPU_DEVICE_MARK if gpu_side_on_cpu(metrics) else ""
            if bounds is not None and mark:
                notes.used.add(CPU_DEVICE_NOTE)

            def fmt_range(_, bounds=bounds, mark=mark):
                lo, hi = bounds
                return f"{_fmt_ms(lo)}{mark}" if lo == hi else f"{_fmt_ms(lo)}–{_fmt_ms(hi)}{mark}"

            row.append(notes.cell(metrics, None if bounds is None else bounds[0], fmt_range))
            for i, s in enumerate(("range_lo", "range_hi")):
                stats[s][model] = _raw(metrics, None if bounds is None else bounds[i])
        rows.append(row)
        records.extend(stats.values())
    caption = ("Inference cost per event in milliseconds, split as in the paper's Table 2: median over the test "
               "events after an untimed warm-up of the whole per-event pipeline, p90 in parentheses. CPU side: "
               "host process time (summed over threads) of the pre- and post-processing (inputs, clustering, "
               "track building); GPU side: the network's forward pass (CUDA events on a GPU); wall: the whole "
               "event including reading it; total (range): Fig. 6 (d)'s estimate from max(CPU, GPU) (the two "
               "overlap) to CPU + GPU (one after the other), of the medians.")
    return Table("table2", caption, ["dataset", "time", *models], rows,
                 pd.DataFrame.from_records(records, columns=["dataset", "quantity", "statistic", *models]),
                 notes.ordered())


#: The EncDec protocol table: (column label, source, key or None for the dataset's headline score).
ENCDEC_COLUMNS = (
    ("next-hit acc.", "protocol", "next_hit_accuracy"),
    ("truth seeds, seeds excl.", "protocol", None),
    ("geometric seeds, all hits", "metrics", None),
    ("truth-seeded wall ms", "protocol", "truth_seeded_wall_ms_median"),
)


def encdec_protocol_table(protocol: dict, metrics: dict, datasets=None, models=None) -> Table:
    """EncDec per dataset under the paper's protocol and as a full-event tracker.

    `protocol` maps ``(dataset, model)`` to ``results/eval/{dataset}/{model}/encdec_protocol.json``,
    `metrics` to the ordinary ``metrics.json``; one row per pair of `models` (default: those with a protocol
    file) found in either. Columns: teacher-forced next-hit accuracy (5 % margin),
    the headline score (FitAccuracy on REDVID, TrackML score otherwise) decoded from truth seeds with the
    seed hits excluded (the paper's Table 1 protocol), the same score of the full-event reconstruction
    from geometric seeds (Table 1's EncDec column) and the truth-seeded wall time per event (median).
    """
    models = {m for _, m in protocol} if models is None else models
    pairs = {pair: True for pair in (*protocol, *metrics) if pair[1] in models}
    datasets, models = _axes(pairs, datasets, models)
    notes = _Notes()
    rows, records = [], []
    for dataset in datasets:
        for model in models:
            sources = {"protocol": protocol.get((dataset, model)), "metrics": metrics.get((dataset, model))}
            if sources["protocol"] is None and sources["metrics"] is None:
                continue
            key = score_key(dataset, metrics)
            row, record = [dataset, model, key], {"dataset": dataset, "model": model, "metric": key}
            for label, source, field_key in ENCDEC_COLUMNS:
                values = sources[source]
                k = field_key or (f"seed_excluded_{key}" if source == "protocol" else key)
                value = metric_value(values, k)
                fmt = _fmt_ms if field_key and field_key.endswith("_ms_median") else "{:.3f}".format
                score = field_key is None  # the headline score needs truth; timing does not
                row.append(notes.cell(values, value, fmt, needs_truth=score))
                record[label] = _raw(values, value, needs_truth=score)
            rows.append(row)
            records.append(record)
    labels = [label for label, _, _ in ENCDEC_COLUMNS]
    caption = ("EncDec under the paper's protocol: next-hit accuracy with teacher forcing (a prediction is "
               "correct within 5 % of the true hit's distance from the origin; paper: 83 % on TrackML "
               "10-50), the score of events decoded from truth seeds with the seed hits left out (the "
               "paper's Table 1 EncDec numbers: 93 % REDVID linear 10-50, 85 % helical 10-50, 85 % helical 50-100, "
               "26 % TrackML 10-50), the score of the full-event "
               "reconstruction from geometric seeds with every hit counted (Table 1 here), and the "
               "truth-seeded decoding wall time per event (median; paper: 16-41 s).")
    return Table("table_encdec", caption, ["dataset", "model", "metric", *labels], rows,
                 pd.DataFrame.from_records(records, columns=["dataset", "model", "metric", *labels]),
                 notes.ordered(), n_label_columns=3)


def locality_clustering_table(clustering: dict, dataset: str) -> Table:
    """The clustering comparison of the slides: one row per region and algorithm.

    `clustering` is the content of ``results/locality/{dataset}/clustering.json``:
    ``{algorithm: {region: {reconstructible_ratio, full_containment, oracle_dm_efficiency,
    attention_fraction, n_clusters, cluster_dm_efficiency, seconds_per_event}}}``. Absent quantities
    show ``n/a``.
    """
    notes = _Notes()
    rows, records = [], []
    regions = order_names({r for per in clustering.values() for r in per}, ("barrel", "endcap"))
    for region in regions:
        for algorithm in sorted(clustering):
            metrics = clustering[algorithm].get(region)
            if metrics is None:
                continue
            row, record = [region, algorithm], {"region": region, "algorithm": algorithm}
            for key, _, fmt in CLUSTERING_COLUMNS:
                value = metric_value(metrics, key)
                row.append(notes.cell(metrics, value, fmt.format))
                record[key] = _raw(metrics, value)
            rows.append(row)
            records.append(record)
    keys = [k for k, _, _ in CLUSTERING_COLUMNS]
    caption = (f"Locality clustering on {dataset}, per detector region and algorithm: reconstructible ratio "
               "(particles with pT > 0.9 GeV and >= 3 hits having >= 50 % of their hits in one cluster), "
               "full containment (all their hits in one neighbourhood), oracle DM (the double-majority "
               "efficiency of the project's track formation on a perfect embedding: the ceiling the "
               "neighbourhoods allow), double-majority efficiency of the clusters alone, number of clusters, "
               "number of tracks (the reconstructible-ratio denominator), attention matrix reduction (sum of "
               "squared cluster sizes over N squared) and clustering time per event: the slides' columns plus "
               "the two ceilings, per region.")
    return Table(f"locality_clustering_{dataset}", caption,
                 ["region", "algorithm", *[label for _, label, _ in CLUSTERING_COLUMNS]], rows,
                 pd.DataFrame.from_records(records, columns=["region", "algorithm", *keys]), notes.ordered())


def locality_latency_table(latency: dict, dataset: str) -> Table:
    """Latency per event of the locality tracker by component (``results/locality/{dataset}/latency.json``)."""
    components = order_names(latency, LATENCY_ORDER)
    rows, records = [], []
    for component in components:
        value = metric_value(latency, component)
        rows.append([LATENCY_LABELS.get(component, component), NOT_AVAILABLE if value is None else _fmt_ms(value)])
        records.append({"component": component, "ms": NOT_AVAILABLE if value is None else value})
    notes = [NOT_AVAILABLE_NOTE] if any(r[1] == NOT_AVAILABLE for r in rows) else []
    return Table(f"locality_latency_{dataset}", f"Locality tracker latency per event on {dataset}, by component.",
                 ["component", "ms / event"], rows, pd.DataFrame.from_records(records, columns=["component", "ms"]),
                 notes, n_label_columns=1)


# --- writers -------------------------------------------------------------------------------------

def _md_escape(text: str) -> str:
    return str(text).replace("|", r"\|")


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table with the caption above and footnotes below."""
    lines = [f"**{_md_escape(table.name)}.** {_md_escape(table.caption)}", ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in table.header) + " |")
    n_labels = table.n_label_columns
    lines.append("|" + "|".join(["---"] * n_labels + ["---:"] * (len(table.header) - n_labels)) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
    if table.notes:
        lines.append("")
        lines.extend(_md_escape(n) + "  " for n in table.notes)
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", GAP: "--",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def to_latex(table: Table) -> str:
    """A self-contained ``table`` environment (plain ``tabular`` with ``\\hline``: no extra packages)."""
    spec = "l" * table.n_label_columns + "r" * (len(table.header) - table.n_label_columns)
    lines = [
        r"\begin{table}[htbp]",
        r"\centering",
        rf"\caption{{{latex_escape(table.caption)}}}",
        rf"\label{{tab:{table.name}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\hline",
        " & ".join(latex_escape(h) for h in table.header) + r" \\",
        r"\hline",
    ]
    lines.extend(" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.rows)
    lines += [r"\hline", r"\end{tabular}"]
    if table.notes:
        lines.append(r"\par\smallskip\footnotesize")
        lines.append(r"\\ ".join(latex_escape(n) for n in table.notes))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_table(table: Table, out_dir) -> list[Path]:
    """Write ``<name>.csv``, ``<name>.md`` and ``<name>.tex`` into `out_dir` atomically; return the paths."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{table.name}.{ext}" for ext in ("csv", "md", "tex")]
    write_csv(paths[0], table.data)
    write_text(paths[1], to_markdown(table))
    write_text(paths[2], to_latex(table))
    return paths
