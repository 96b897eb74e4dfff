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

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
            "#7f7f7f", "#bcbd22")
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "h")
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
    """Colour and marker per model: the paper's models keep the same look in every figure."""
    ordered = order_names(models, MODEL_ORDER)
    out = {}
    for i, model in enumerate(ordered):
        slot = MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER) + i
        out[model] = {"color": _PALETTE[slot % len(_PALETTE)], "marker": _MARKERS[slot % len(_MARKERS)]}
    return out


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
