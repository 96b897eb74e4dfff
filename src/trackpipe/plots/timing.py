"""Fig. 5: inference time per event against the number of tracks in the event (log-log).

Input per model: one row per event with ``n_particles`` (from per_event.parquet) and the time
columns of timing.csv, already joined on ``event_id``. Each event is a point; the line is the median
time in logarithmic bins of the number of tracks, the band its interquartile range (25-75 %). The
legend sits under the panel, the log axes carry plain labels (no overlapping minor labels).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .style import figure_legend, log_axis, model_styles, new_figure, no_data, require_columns, save_figure, style

log = logging.getLogger(__name__)

TIME_LABELS = {
    "device_ms": "device time per event [ms]",
    "host_cpu_ms": "host CPU time per event [ms]",
    "wall_ms": "wall-clock time per event [ms]",
}


def binned_quantiles(x: np.ndarray, y: np.ndarray, n_bins: int = 12, q=(0.5,)) -> tuple[np.ndarray, list]:
    """Quantiles `q` of `y` in `n_bins` logarithmic bins of `x` (x > 0); returns (geometric bin centre,
    [values per quantile]) for the non-empty bins. A single distinct x gives one point."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size == 0:
        return np.empty(0), [np.empty(0) for _ in q]
    lo, hi = np.log10(x.min()), np.log10(x.max())
    if hi <= lo:
        return np.array([x[0]]), [np.array([np.quantile(y, p)]) for p in q]
    edges = np.linspace(lo, hi, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, np.log10(x), side="right") - 1, 0, n_bins - 1)
    groups = pd.Series(y).groupby(idx)
    values = [groups.quantile(p) for p in q]
    occupied = values[0].index.to_numpy()
    centres = 10 ** (0.5 * (edges[occupied] + edges[occupied + 1]))
    return centres, [v.to_numpy() for v in values]


def binned_median(x: np.ndarray, y: np.ndarray, n_bins: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Median of `y` in `n_bins` logarithmic bins of `x` (x > 0); returns (geometric bin centre, median)
    for the non-empty bins. A single distinct x gives one point."""
    centres, (median,) = binned_quantiles(x, y, n_bins, q=(0.5,))
    return centres, median


def plot_time_vs_tracks(per_model: Mapping[str, pd.DataFrame], out, *, time_column: str = "device_ms",
                        title: str | None = None, n_bins: int = 12):
    """Scatter of `time_column` against ``n_particles`` per event, with the binned median per model."""
    for label, df in per_model.items():
        require_columns(df, ("n_particles", time_column), what=f"timing of {label}")
    styles = model_styles(per_model)
    with style():
        fig, axes = new_figure(width=4.4, height=3.3)
        ax = axes[0, 0]
        drawn = 0
        for model, st in styles.items():
            df = per_model[model]
            x, y = df.n_particles.to_numpy(float), df[time_column].to_numpy(float)
            keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
            if not keep.all():
                # A log axis cannot show zero or missing times; say how many events are left out.
                log.info("%s: %d of %d events without a positive %s or track count are not drawn",
                         model, int((~keep).sum()), len(keep), time_column)
            x, y = x[keep], y[keep]
            if x.size == 0:
                continue
            ax.scatter(x, y, s=6, color=st["color"], alpha=0.35, linewidths=0, label=f"_{model} events")
            cx, (cy, q1, q3) = binned_quantiles(x, y, n_bins, q=(0.5, 0.25, 0.75))
            ax.fill_between(cx, q1, q3, color=st["color"], alpha=0.2, linewidth=0, label=f"_{model} IQR")
            ax.plot(cx, cy, color=st["color"], marker=st["marker"], label=f"{model} (median)")
            drawn += 1
        ax.set_xlabel("tracks (particles) per event")
        ax.set_ylabel(TIME_LABELS.get(time_column, time_column))
        if drawn:
            log_axis(ax, "x")
            log_axis(ax, "y")
            figure_legend(fig, axes, ncol=3, title="line: median per bin, band: 25-75 %, dots: events")
        else:
            no_data(ax)
        if title:
            ax.set_title(title)
        save_figure(fig, out)
    return fig
