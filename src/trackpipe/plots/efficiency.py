"""Fig. 4 (and the locality tracker's efficiency figure): binned metrics with 68 % bootstrap bands.

Input per model: the tidy table of ``results/eval/{dataset}/{model}/binned.parquet`` with columns
``metric, variable, lo_edge, hi_edge, value, ci_lo, ci_hi, n``. One panel per (metric, variable),
one line per model at the bin centres, the bootstrap interval as a shaded band.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .style import model_styles, new_figure, no_data, require_columns, save_figure, style

BINNED_COLUMNS = ("metric", "variable", "lo_edge", "hi_edge", "value", "ci_lo", "ci_hi", "n")

VARIABLE_LABELS = {
    "pt": r"$p_\mathrm{T}$ [GeV]",
    "eta": r"$\eta$",
    "phi": r"$\phi$ [rad]",
    "vz": r"$v_z$ [mm]",
}
METRIC_LABELS = {
    "dm_efficiency": "double-majority efficiency",
    "perfect_efficiency": "perfect-match efficiency",
    "lhc_efficiency": "LHC efficiency",
    "fake_rate": "fake rate",
    "duplicate_rate": "duplicate rate",
    "trackml_score": "TrackML score",
    "fit_accuracy": "FitAccuracy",
}
#: Variables drawn on a logarithmic axis (pT spans two decades).
LOG_VARIABLES = frozenset({"pt"})


def bin_centres(lo: np.ndarray, hi: np.ndarray, log: bool) -> np.ndarray:
    """Arithmetic bin centres, or geometric ones on a log axis (where both edges are positive)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    if log:
        positive = (lo > 0) & (hi > 0)
        return np.where(positive, np.sqrt(np.abs(lo * hi)), 0.5 * (lo + hi))
    return 0.5 * (lo + hi)


def plot_binned(binned: Mapping[str, pd.DataFrame], out, *, metrics=("dm_efficiency", "fake_rate"),
                variables=("pt", "eta"), title: str | None = None):
    """Draw `metrics` (rows) against `variables` (columns) for every model in `binned`; save PNG + PDF.

    `binned` maps a legend label (model name) to its binned table. Returns the Figure; each panel's
    lines carry the model name as label, their y data are exactly the table's ``value`` column.
    """
    for label, df in binned.items():
        require_columns(df, BINNED_COLUMNS, what=f"binned table of {label}")
    styles = model_styles(binned)
    with style():
        fig, axes = new_figure(len(metrics), len(variables), width=3.3, height=2.5)
        for i, metric in enumerate(metrics):
            for j, variable in enumerate(variables):
                ax = axes[i, j]
                log = variable in LOG_VARIABLES
                drawn = 0
                for model in styles:
                    sel = binned[model]
                    sel = sel[(sel.metric == metric) & (sel.variable == variable)].sort_values("lo_edge")
                    if sel.empty:
                        continue
                    x = bin_centres(sel.lo_edge.to_numpy(), sel.hi_edge.to_numpy(), log)
                    st = styles[model]
                    ax.fill_between(x, sel.ci_lo.to_numpy(float), sel.ci_hi.to_numpy(float), color=st["color"],
                                    alpha=0.25, linewidth=0, label=f"_{model} 68% CI")
                    ax.plot(x, sel.value.to_numpy(float), color=st["color"], marker=st["marker"], label=model)
                    drawn += 1
                if log:
                    ax.set_xscale("log")
                ax.set_xlabel(VARIABLE_LABELS.get(variable, variable))
                ax.set_ylabel(METRIC_LABELS.get(metric, metric))
                if not drawn:
                    no_data(ax)
                    continue
                if metric.endswith("efficiency"):
                    ax.set_ylim(0, 1.05)
                else:
                    ax.set_ylim(bottom=0)
                if i == 0 and j == 0:
                    ax.legend(title="bands: 68 % bootstrap CI", loc="lower right")
        if title:
            fig.suptitle(title)
        save_figure(fig, out)
    return fig
