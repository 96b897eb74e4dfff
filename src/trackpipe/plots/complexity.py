"""Fig. 6: accuracy and cost against the complexity level (the datasets in the paper's order).

Four panels: the headline score (FitAccuracy on REDVID datasets, TrackML score otherwise, as in
Table 1), median device time, median host CPU time and median wall-clock time per event. A model
without a result on a dataset has no point there (the line is broken, nothing is interpolated).
"""

from __future__ import annotations

import numpy as np

from ..tables import DATASET_ORDER, MODEL_ORDER, metric_value, order_names, score_key
from .style import model_styles, new_figure, no_data, save_figure, style

PANELS = (
    ("score", "score (FitAccuracy / TrackML)", False),
    ("device_ms_median", "device time per event [ms]", True),
    ("host_cpu_ms_median", "host CPU time per event [ms]", True),
    ("wall_ms_median", "wall-clock time per event [ms]", True),
)


def complexity_series(results: dict, datasets, model: str, key: str) -> np.ndarray:
    """The values of one panel for one model across `datasets`; NaN where there is no result."""
    values = []
    for dataset in datasets:
        k = score_key(dataset, results) if key == "score" else key
        v = metric_value(results.get((dataset, model)), k)
        values.append(np.nan if v is None else v)
    return np.array(values, dtype=float)


def plot_complexity(results: dict, out, *, datasets=None, models=None, title: str | None = None):
    """Draw the four panels of Fig. 6 from ``{(dataset, model): metrics}``; save PNG + PDF."""
    datasets = order_names(datasets if datasets is not None else {d for d, _ in results}, DATASET_ORDER)
    models = order_names(models if models is not None else {m for _, m in results}, MODEL_ORDER)
    styles = model_styles(models)
    positions = np.arange(len(datasets))
    with style():
        fig, axes = new_figure(2, 2, width=3.6, height=2.8)
        for ax, (key, ylabel, log) in zip(axes.flat, PANELS):
            drawn = 0
            for model, st in styles.items():
                y = complexity_series(results, datasets, model, key)
                if np.isnan(y).all() or (log and not (y > 0).any()):
                    continue
                ax.plot(positions, y, color=st["color"], marker=st["marker"], label=model)
                drawn += 1
            ax.set_xticks(positions, datasets, rotation=30, ha="right")
            ax.tick_params(axis="x", which="minor", bottom=False, top=False)  # categories: no minor ticks
            ax.set_xlim(-0.5, max(len(datasets), 1) - 0.5)
            ax.set_xlabel("complexity level (dataset)")
            ax.set_ylabel(ylabel)
            if not drawn:
                no_data(ax)
                continue
            if log:
                ax.set_yscale("log")
            else:
                ax.set_ylim(0, 1.05)
        handles, labels = [], []
        for ax in axes.flat:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        if handles:
            # Above the panels: inside one they hide the points (eight models on a 0-1 score axis).
            fig.legend(handles, labels, loc="outside upper center", ncol=min(len(labels), 4))
        if title:
            fig.suptitle(title)
        save_figure(fig, out)
    return fig
