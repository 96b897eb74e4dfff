"""Fig. 6: accuracy and cost against the complexity level (the datasets in the paper's order).

The paper's four panels: (a) the headline score (FitAccuracy on REDVID datasets, TrackML score
otherwise, as in Table 1), (b) the CPU side (median host process time of the pre/post-processing),
(c) the GPU side (median forward-pass time; hollow markers where the network ran on the CPU, Table 2's
``*``; a tracker without a network has no point there) and (d) the estimated total per event as a
range from max(CPU, GPU) to CPU + GPU (a CPU-only tracker: its CPU side), with the measured median wall
clock as a dotted line for comparison. A model without a result on a dataset has no point there (the
line is broken, nothing is interpolated). Models sit side by side within a level so ranges do not hide
each other. Statistics carry their spread: the score a 68 % bootstrap interval over the test events
(from the per-event scores, when given), the CPU and GPU sides a bar from the median up to the p90.
"""

from __future__ import annotations

import numpy as np

from ..metrics.binning import bootstrap_ratio
from ..tables import DATASET_ORDER, MODEL_ORDER, gpu_side_on_cpu, metric_value, order_names, score_key, time_range
from .style import figure_legend, log_axis, model_styles, new_figure, no_data, save_figure, style

PANELS = (
    ("score", "(a) score (FitAccuracy / TrackML)", False),
    ("host_cpu_ms_median", "(b) CPU side per event [ms]", True),
    ("device_ms_median", "(c) GPU side per event [ms]", True),
    ("range", "(d) total per event [ms]", True),
)


def complexity_series(results: dict, datasets, model: str, key: str) -> np.ndarray:
    """The values of one panel for one model across `datasets`; NaN where there is no result."""
    values = []
    for dataset in datasets:
        k = score_key(dataset, results) if key == "score" else key
        v = metric_value(results.get((dataset, model)), k)
        values.append(np.nan if v is None else v)
    return np.array(values, dtype=float)


def score_interval(per_event: dict | None, results: dict, datasets, model: str, *, n_resamples: int = 1000,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """68 % bootstrap interval over events of the mean per-event score (the Table 1 number) per dataset;
    NaN where there are no per-event scores (or only one event: no interval)."""
    lo, hi = np.full(len(datasets), np.nan), np.full(len(datasets), np.nan)
    for i, dataset in enumerate(datasets):
        table = (per_event or {}).get((dataset, model))
        key = score_key(dataset, results)
        if table is None or key not in table.columns:
            continue
        scores = table[key].dropna().to_numpy(float)
        if len(scores) < 2:
            continue
        _, lo[i:i + 1], hi[i:i + 1] = bootstrap_ratio(scores[:, None], np.ones((len(scores), 1)),
                                                      n_resamples=n_resamples, seed=seed)
    return lo, hi


def range_series(results: dict, datasets, model: str) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of Fig. 6 (d) per dataset: `tables.time_range` of the medians; NaN without one."""
    lo, hi = [], []
    for dataset in datasets:
        r = time_range(results.get((dataset, model)))
        lo.append(np.nan if r is None else r[0])
        hi.append(np.nan if r is None else r[1])
    return np.array(lo, float), np.array(hi, float)


def plot_complexity(results: dict, out, *, datasets=None, models=None, title: str | None = None,
                    per_event: dict | None = None):
    """Draw the four panels of Fig. 6 from ``{(dataset, model): metrics}``; save PNG + PDF.

    `per_event`: ``{(dataset, model): per_event table}`` for the score's bootstrap interval."""
    datasets = order_names(datasets if datasets is not None else {d for d, _ in results}, DATASET_ORDER)
    models = order_names(models if models is not None else {m for _, m in results}, MODEL_ORDER)
    styles = model_styles(models)
    positions = np.arange(len(datasets))
    width = 0.6 / max(len(styles), 1)
    with style():
        fig, axes = new_figure(2, 2, width=3.6, height=2.8)
        for ax, (key, ylabel, log) in zip(axes.flat, PANELS):
            drawn = 0
            for k, (model, st) in enumerate(styles.items()):
                x = positions + (k - (len(styles) - 1) / 2) * width
                if key == "range":
                    lo, hi = range_series(results, datasets, model)
                    if not (np.isfinite(lo) & (lo > 0)).any():
                        continue
                    ax.errorbar(x, lo, yerr=[np.zeros_like(lo), hi - lo], color=st["color"], marker=st["marker"],
                                linestyle="none", capsize=2, label=model)
                    wall = complexity_series(results, datasets, model, "wall_ms_median")
                    ax.plot(x, wall, color=st["color"], linestyle=":", marker=st["marker"], markerfacecolor="none",
                            markersize=3, label=f"_{model} wall")
                    drawn += 1
                    continue
                y = complexity_series(results, datasets, model, key)
                if np.isnan(y).all() or (log and not (y > 0).any()):
                    continue
                ax.plot(x, y, color=st["color"], marker=st["marker"], label=model)
                if key == "score":
                    lo, hi = score_interval(per_event, results, datasets, model)
                    ok = np.isfinite(lo) & np.isfinite(y)
                    if ok.any():
                        # Clipped at the point: a percentile interval need not contain the mean exactly.
                        yerr = [np.clip(y[ok] - lo[ok], 0, None), np.clip(hi[ok] - y[ok], 0, None)]
                        ax.errorbar(x[ok], y[ok], yerr=yerr, fmt="none", ecolor=st["color"], capsize=2,
                                    label=f"_{model} 68% CI")
                else:
                    p90 = complexity_series(results, datasets, model, key.replace("_median", "_p90"))
                    ok = np.isfinite(p90) & np.isfinite(y)
                    if ok.any():
                        ax.errorbar(x[ok], y[ok], yerr=[np.zeros(ok.sum()), np.clip(p90[ok] - y[ok], 0, None)],
                                    fmt="none", ecolor=st["color"], capsize=2, label=f"_{model} p90")
                if key == "device_ms_median":
                    on_cpu = np.array([gpu_side_on_cpu(results.get((d, model))) for d in datasets]) & np.isfinite(y)
                    if on_cpu.any():  # Table 2's "*": measured on the CPU
                        ax.plot(x[on_cpu], y[on_cpu], linestyle="none", marker=st["marker"], markersize=6,
                                markerfacecolor="white", markeredgecolor=st["color"], label="_on cpu")
                drawn += 1
            ax.set_xticks(positions, datasets, rotation=30, ha="right")
            ax.tick_params(axis="x", which="minor", bottom=False, top=False)  # categories: no minor ticks
            ax.set_xlim(-0.5, max(len(datasets), 1) - 0.5)
            ax.set_ylabel(ylabel)
            if not drawn:
                no_data(ax, "no GPU side (trackers without a network)" if key == "device_ms_median" else "no data")
                continue
            if log:
                log_axis(ax, "y")
            else:
                ax.set_ylim(0, 1.05)
        axes[0, 0].set_title("bars: 68 % bootstrap interval over test events", fontsize=7, loc="left")
        axes[0, 1].set_title("median per event, bar up to p90", fontsize=7, loc="left")
        axes[1, 0].set_title("median, bar to p90; hollow: the network ran on the CPU (*)", fontsize=7, loc="left")
        axes[1, 1].set_title("bar: max(CPU, GPU) to CPU + GPU; dotted: wall clock", fontsize=7, loc="left")
        figure_legend(fig, axes, ncol=min(len(styles), 5), loc="outside upper center")
        if title:
            fig.suptitle(title)
        save_figure(fig, out)
    return fig
