"""Scaling study figure: inference time against hits per event (log-log) with a fitted power law.

Input: ``results/bench/scaling.csv`` with columns ``model, n_tracks, n_hits, ms_median, ms_p90,
peak_mb``. Each model's points are fitted with ``t = a · N^k`` by least squares in log-log space and
the exponent ``k`` is printed in the legend.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .style import figure_legend, log_axis, model_styles, new_figure, no_data, require_columns, save_figure, style

SCALING_COLUMNS = ("model", "n_tracks", "n_hits", "ms_median", "ms_p90", "peak_mb")


def fit_power_law(x, y) -> tuple[float, float]:
    """Least-squares fit of ``log y = log a + k log x`` over the positive points; returns (k, a).

    Needs at least two distinct positive x values; otherwise returns (nan, nan).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if np.unique(x).size < 2:
        return float("nan"), float("nan")
    k, log_a = np.polyfit(np.log(x), np.log(y), 1)
    return float(k), float(np.exp(log_a))


def plot_scaling(scaling: pd.DataFrame, out, *, x: str = "n_hits", y: str = "ms_median",
                 upper: str | None = "ms_p90", title: str | None = None):
    """Median time per event (p90 as the upper error) against `x` per model, with the fitted law."""
    require_columns(scaling, SCALING_COLUMNS, what="scaling table")
    models = sorted(scaling.model.astype(str).unique())
    styles = model_styles(models)
    with style():
        fig, axes = new_figure(width=4.4, height=3.3)
        ax = axes[0, 0]
        for model, st in styles.items():
            df = scaling[scaling.model.astype(str) == model].sort_values(x)
            xs, ys = df[x].to_numpy(float), df[y].to_numpy(float)
            k, a = fit_power_law(xs, ys)
            label = model if np.isnan(k) else rf"{model} ($\propto N^{{{k:.2f}}}$)"
            yerr = None
            if upper is not None:
                yerr = np.vstack([np.zeros_like(ys), np.clip(df[upper].to_numpy(float) - ys, 0, None)])
            ax.errorbar(xs, ys, yerr=yerr, color=st["color"], marker=st["marker"], linestyle="none",
                        capsize=2, label=label)
            if not np.isnan(k):
                grid = np.geomspace(xs[xs > 0].min(), xs.max(), 50)
                ax.plot(grid, a * grid**k, color=st["color"], linestyle="--", linewidth=1, label=f"_{model} fit")
        ax.set_xlabel("hits per event" if x == "n_hits" else "tracks per event")
        ax.set_ylabel("inference time per event [ms]")
        if models:
            log_axis(ax, "x")
            log_axis(ax, "y")
            figure_legend(fig, axes, ncol=2, title="median per event; bar up to p90; dashed: fitted power law")
        else:
            no_data(ax)
        if title:
            ax.set_title(title)
        save_figure(fig, out)
    return fig
