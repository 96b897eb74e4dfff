"""Shared look and output of every figure: fixed rcParams, fixed model colours, deterministic saving.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot): no global figure
registry, no backend selection, nothing left open. The HEP look (inward ticks on all four sides,
minor ticks, no legend frame) is set here with plain rcParams instead of an mplhep style, because the
mplhep fonts trigger mathtext warnings on every label and add a font dependency for no gain.
Saving strips the timestamps matplotlib would embed, so two runs give byte-identical PNG and PDF.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..io.atomic import atomic_path
from ..tables import MODEL_ORDER, order_names

RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.labelsize": 9,
    "axes.titlesize": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "xtick.direction": "in",
    "ytick.direction": "in",
    "xtick.top": True,
    "ytick.right": True,
    "xtick.minor.visible": True,
    "ytick.minor.visible": True,
    "lines.linewidth": 1.4,
    "lines.markersize": 4,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.prop_cycle": matplotlib.rcParamsDefault["axes.prop_cycle"],
    "path.simplify": True,
}

FORMATS = ("png", "pdf")
#: Metadata entries matplotlib would otherwise fill with the version or the current time.
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None}}

#: Every series name that figures draw, in a fixed order: the paper's models, then the scaling
#: study's extra series (`bench.scaling.ENCODERS`). Each gets its own colour and marker, the same in
#: every figure; names outside this list follow in the slots after it (alphabetically per figure).
STYLE_ORDER = MODEL_ORDER + ("encoder-dense", "encoder-blocked", "locality", "encoder-flash")
# One slot per STYLE_ORDER entry: EncCla black and EncReg red as in the paper's Fig. 4, the others
# colour-blind-safe (Okabe-Ito) then distinct Tableau hues; no grey (grey means "too few entries").
_PALETTE = ("#0072b2", "#e69f00", "#000000", "#d62728", "#009e73", "#cc79a7", "#56b4e9", "#8c564b",
            "#9467bd", "#bcbd22", "#17becf", "#ff7f0e", "#2ca02c", "#7f3b08", "#1f3a93", "#f0027f")
_MARKERS = ("D", "v", "o", "s", "^", "P", "X", "<", ">", "h", "*", "p", "d", "H", "8", "o")
GREY = "#b0b0b0"


@contextlib.contextmanager
def style():
    """Apply the fixed rcParams for drawing and saving, restoring the caller's afterwards."""
    with matplotlib.rc_context(RC):
        yield


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 3.4, height: float = 2.6, **kwargs):
    """A Figure with an `nrows` × `ncols` grid of axes, each panel `width` × `height` inches."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def model_styles(models) -> dict[str, dict]:
    """Colour and marker per model (in `STYLE_ORDER`): a known series looks the same in every figure and
    no two series of one figure share a colour (up to the palette's 16)."""
    ordered = order_names(models, STYLE_ORDER)
    out = {}
    unknown = 0
    for model in ordered:
        if model in STYLE_ORDER:
            slot = STYLE_ORDER.index(model)
        else:
            slot = len(STYLE_ORDER) + unknown
            unknown += 1
        out[model] = {"color": _PALETTE[slot % len(_PALETTE)], "marker": _MARKERS[slot % len(_MARKERS)]}
    return out


def log_axis(ax, axis: str = "x") -> None:
    """A readable log axis: labelled major ticks at 1, 2, 5 x 10^k written plainly (0.5, 1, 2, ...),
    unlabelled minor ticks (matplotlib otherwise labels minor ticks on short ranges and they overlap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    lo, hi = (ax.get_xlim() if axis == "x" else ax.get_ylim())
    decades = np.log10(max(hi, 1e-300) / max(lo, 1e-300)) if lo > 0 else 3
    subs = (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
    target.set_major_locator(LogLocator(base=10, subs=subs))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10) * 1.0))
    target.set_minor_formatter(NullFormatter())


def figure_legend(fig, axes, *, ncol: int = 4, title: str | None = None, loc: str = "outside lower center",
                  **kwargs):
    """One legend for the whole figure, outside the panels (below them by default, so it never meets
    the title or the data), with every labelled artist of `axes` once."""
    handles, labels = [], []
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if not handles:
        return None
    return fig.legend(handles, labels, loc=loc, ncol=min(len(labels), ncol), title=title, **kwargs)


def output_paths(out) -> list[Path]:
    """`out` is a path stem (``figures/fig4``) or a path with any suffix; return its PNG and PDF paths."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix.lower() in {f".{f}" for f in FORMATS} else out
    return [stem.parent / f"{stem.name}.{fmt}" for fmt in FORMATS]


def save_figure(fig: Figure, out) -> list[Path]:
    """Write `fig` as PNG and PDF next to each other, atomically and without timestamps."""
    paths = output_paths(out)
    with style():
        for path in paths:
            fmt = path.suffix[1:]
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, metadata=_METADATA[fmt])
    return paths


def require_columns(df, columns, *, what: str) -> None:
    """Raise DataError naming `what` (usually the source file) when `df` lacks any of `columns`."""
    from ..io.validate import require_columns as require

    require(df, columns, file=what)


def no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=GREY)
