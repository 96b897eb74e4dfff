"""Fig. 4 (and the locality tracker's efficiency figure): binned metrics with 68 % bootstrap bands.

Input per model: the tidy table of ``results/eval/{dataset}/{model}/binned.parquet`` with columns
``metric, variable, lo_edge, hi_edge, value, ci_lo, ci_hi, n``. One panel per (metric, variable),
one line per model through the bin centres (markers, horizontal bars = bin width), the bootstrap
interval as a shaded band. Bins with fewer than `min_entries` objects (``n``: particles or tracks)
are drawn as hollow grey markers off the line and outside the band: a rate of 0 or 1 from three
particles is not a measurement. The legend sits above the panels; the caption line under the title
says what was selected and over how many events the bands were bootstrapped.
"""

from __future__ import annotations

import textwrap

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..metrics.binning import BINNED_COLUMNS
from .style import GREY, figure_legend, log_axis, model_styles, new_figure, no_data, require_columns, \
    save_figure, style

VARIABLE_LABELS = {
    "pt": r"$p_\mathrm{T}$ [GeV]",
    "eta": r"$\eta$",
    "phi": r"$\phi$ [rad]",
    "vz": r"$v_z$ [mm]",
}
METRIC_LABELS = {
    "fit_accuracy": "FitAccuracy",
    "track_fake_rate": "fake rate (all tracks)",
    "dm_efficiency": "DM efficiency\n(gnn_tracking)",  # two lines: a one-row figure's panels are short
    "perfect_efficiency": "perfect-match efficiency",
    "lhc_efficiency": "LHC efficiency",
    "fake_rate": "fake rate\n(gnn_tracking)",
    "duplicate_rate": "duplicate rate",
    "trackml_score": "TrackML score",
}
#: Metrics bounded by 1 that read as "higher is better" (y axis 0-1.05).
UNIT_METRICS = frozenset({"fit_accuracy", "dm_efficiency", "perfect_efficiency", "lhc_efficiency"})
#: Variables drawn on a logarithmic axis (pT spans two decades).
LOG_VARIABLES = frozenset({"pt"})
MIN_ENTRIES = 10


def bin_centres(lo: np.ndarray, hi: np.ndarray, log: bool) -> np.ndarray:
    """Arithmetic bin centres, or geometric ones on a log axis (where both edges are positive)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    if log:
        positive = (lo > 0) & (hi > 0)
        return np.where(positive, np.sqrt(np.abs(lo * np.where(positive, hi, 1))), 0.5 * (lo + hi))
    return 0.5 * (lo + hi)


def _panel(ax, binned, styles, metric, variable, min_entries) -> int:
    log = variable in LOG_VARIABLES
    drawn = 0
    for model, st in styles.items():
        sel = binned[model]
        sel = sel[(sel.metric == metric) & (sel.variable == variable)].sort_values("lo_edge")
        if sel.empty:
            continue
        lo, hi = sel.lo_edge.to_numpy(float), sel.hi_edge.to_numpy(float)
        x = bin_centres(lo, hi, log)
        value = sel.value.to_numpy(float)
        enough = sel.n.to_numpy() >= min_entries
        shown = np.where(enough, value, np.nan)
        ax.fill_between(x, np.where(enough, sel.ci_lo.to_numpy(float), np.nan),
                        np.where(enough, sel.ci_hi.to_numpy(float), np.nan), color=st["color"], alpha=0.2,
                        linewidth=0, label=f"_{model} 68% CI")
        # Horizontal bars: the bin (on a log axis a bin starting at 0 is drawn from its centre).
        left = np.where(log & (lo <= 0), x, lo)
        ax.errorbar(x, shown, xerr=[x - left, hi - x], fmt="none", ecolor=st["color"], elinewidth=0.8,
                    label=f"_{model} bins")
        ax.plot(x, value if enough.all() else shown, color=st["color"], marker=st["marker"], label=model)
        if (~enough & np.isfinite(value)).any():
            few = ~enough & np.isfinite(value)
            ax.scatter(x[few], value[few], marker=st["marker"], facecolors="none", edgecolors=GREY, zorder=3,
                       label=f"fewer than {min_entries} entries")
        drawn += 1
    if log:
        positive = [b[(b.metric == metric) & (b.variable == variable)] for b in binned.values()]
        edges = np.concatenate([np.r_[p.lo_edge.to_numpy(float), p.hi_edge.to_numpy(float)] for p in positive])
        edges = edges[edges > 0]
        if len(edges):
            centres = np.concatenate([bin_centres(p.lo_edge, p.hi_edge, True) for p in positive])
            ax.set_xlim(min(edges.min(), centres[centres > 0].min()) * 0.8, edges.max() * 1.1)
        log_axis(ax, "x")
    return drawn


def plot_binned(binned: Mapping[str, pd.DataFrame], out, *, metrics=("fit_accuracy", "track_fake_rate"),
                variables=("pt", "eta"), title: str | None = None, caption: str | None = None,
                min_entries: int = MIN_ENTRIES):
    """Draw `metrics` (rows) against `variables` (columns) for every model in `binned`; save PNG + PDF.

    `binned` maps a legend label (model name) to its binned table. Returns the Figure; each panel's
    line per model carries the model name as label, its y data are the table's ``value`` column (NaN
    in bins with fewer than `min_entries` objects, which are drawn grey instead). `caption` is printed
    under the title (selection, bootstrap).
    """
    for label, df in binned.items():
        require_columns(df, BINNED_COLUMNS, what=f"binned table of {label}")
    styles = model_styles(binned)
    with style():
        fig, axes = new_figure(len(metrics), len(variables), width=3.3, height=2.5)
        for i, metric in enumerate(metrics):
            for j, variable in enumerate(variables):
                ax = axes[i, j]
                drawn = _panel(ax, binned, styles, metric, variable, min_entries)
                ax.set_xlabel(VARIABLE_LABELS.get(variable, variable))
                ax.set_ylabel(METRIC_LABELS.get(metric, metric))
                ax.set_title(f"({chr(ord('a') + i * len(variables) + j)})", loc="left")
                if not drawn:
                    no_data(ax)
                    continue
                if metric in UNIT_METRICS:
                    ax.set_ylim(0, 1.05)
                else:
                    ax.set_ylim(0, max(0.05, min(1.05, _top(binned, metric) * 1.15)))
        figure_legend(fig, axes, ncol=5, title="bands: 68 % bootstrap interval over events")
        # A long selection caption is wrapped to the figure's width (~14 characters per inch at 8 pt), or
        # constrained layout squeezes the panels to fit one long line.
        wrapped = textwrap.fill(caption, width=max(40, int(14 * fig.get_figwidth()))) if caption else caption
        heading = "\n".join(t for t in (title, wrapped) if t)
        if heading:
            fig.suptitle(heading, fontsize=8)
        save_figure(fig, out)
    return fig


def _top(binned, metric) -> float:
    values = [np.nanmax(np.r_[b.loc[b.metric == metric, "ci_hi"].to_numpy(float),
                              b.loc[b.metric == metric, "value"].to_numpy(float), 0.0]) for b in binned.values()]
    return float(max(values)) if values else 1.0
