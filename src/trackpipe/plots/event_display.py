"""Event display: the hits of one event coloured by predicted track, in the x–y and r–z views.

Colours are capped: tracks are ordered by their mean azimuth and take the palette's colours in turn,
so tracks next to each other differ in colour while the number of distinct colours stays readable.
Hits in tracks with fewer than `min_track_hits` hits (noise, singletons) and hits missing from the
track table are drawn grey underneath.

A dense event (more than `max_hits` hits, e.g. HL-LHC with 50 000+) would be a solid disc of colour,
so only a φ slice centred on φ = 0 is drawn, wide enough to hold about `max_hits` hits (at least
π/64 either side), and only the `max_colours` track candidates with most hits in the slice are
coloured (one colour each), over the slice's other hits in grey; the title states the slice and how
many hits and tracks it holds.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd

from ..errors import DataError
from .style import GREY, figure_legend, new_figure, require_columns, save_figure, style

MAX_COLOURS = 20
MAX_HITS = 4000


def phi_slice(hits: pd.DataFrame, max_hits: int = MAX_HITS) -> tuple[np.ndarray, float]:
    """Rows of `hits` in the φ slice around 0 holding about `max_hits` hits, and its half-width (π: all)."""
    n = len(hits)
    if n <= max_hits:
        return np.ones(n, dtype=bool), float(np.pi)
    half = max(np.pi * max_hits / n, np.pi / 64)
    phi = np.arctan2(hits.y.to_numpy(float), hits.x.to_numpy(float))
    return np.abs(phi) < half, float(half)


def track_colour_index(hits: pd.DataFrame, tracks: pd.DataFrame, *, max_colours: int = MAX_COLOURS,
                       min_track_hits: int = 2) -> tuple[np.ndarray, int]:
    """Palette index per hit (row order of `hits`, -1 for grey hits) and the number of coloured tracks.

    Tracks with at least `min_track_hits` hits are sorted by circular mean φ (ties by track id) and
    numbered 0, 1, 2, ...; a hit's index is its track's number modulo `max_colours`.
    """
    merged = hits[["hit_id", "x", "y"]].merge(tracks[["hit_id", "track_id"]], on="hit_id", how="left")
    track = merged.track_id
    phi = np.arctan2(merged.y.to_numpy(float), merged.x.to_numpy(float))
    per_hit = pd.DataFrame({"track_id": track, "c": np.cos(phi), "s": np.sin(phi)}).dropna(subset=["track_id"])
    agg = per_hit.groupby("track_id").agg(n=("c", "size"), c=("c", "sum"), s=("s", "sum"))
    agg = agg[agg.n >= min_track_hits]
    agg["phi"] = np.arctan2(agg.s, agg.c)
    agg = agg.reset_index().sort_values(["phi", "track_id"])
    rank = pd.Series(np.arange(len(agg)) % max_colours, index=agg.track_id.to_numpy())
    return track.map(rank).fillna(-1).to_numpy(dtype=np.int64), len(agg)


def plot_event_display(hits: pd.DataFrame, tracks: pd.DataFrame, out, *, max_colours: int = MAX_COLOURS,
                       min_track_hits: int = 2, title: str | None = None, max_hits: int = MAX_HITS):
    """Draw `hits` (hit_id, x, y, z in mm) coloured by `tracks` (hit_id, track_id); save PNG + PDF.

    Events with more than `max_hits` hits are drawn as a φ slice (module docstring)."""
    require_columns(hits, ("hit_id", "x", "y", "z"), what="event hits")
    require_columns(tracks, ("hit_id", "track_id"), what="event tracks")
    if tracks.hit_id.duplicated().any():
        dup = int(tracks.hit_id[tracks.hit_id.duplicated()].iloc[0])
        raise DataError(f"hit {dup} has more than one track", file="event tracks", column="hit_id")
    max_colours = int(min(max(max_colours, 1), MAX_COLOURS))
    n_all = len(hits)
    inside, half = phi_slice(hits, max_hits)
    hits = hits[inside].reset_index(drop=True)
    n_slice_tracks = None
    if half < np.pi:
        in_slice = tracks[tracks.hit_id.isin(hits.hit_id)]
        sizes = in_slice.groupby("track_id").size()
        sizes = sizes[sizes >= min_track_hits]
        n_slice_tracks = len(sizes)
        longest = sizes.reset_index(name="n").sort_values(["n", "track_id"], ascending=[False, True])
        tracks = in_slice[in_slice.track_id.isin(longest.track_id.head(max_colours))]
    index, n_tracks = track_colour_index(hits, tracks, max_colours=max_colours, min_track_hits=min_track_hits)
    palette = np.asarray(matplotlib.colormaps["tab20"].colors)[:max_colours]
    x, y, z = (hits[c].to_numpy(float) for c in ("x", "y", "z"))
    r = np.hypot(x, y)
    grey, coloured = index < 0, index >= 0
    with style():
        fig, axes = new_figure(1, 2, width=3.6, height=3.4)
        views = ((axes[0, 0], x, y, "x [mm]", "y [mm]"), (axes[0, 1], z, r, "z [mm]", "r [mm]"))
        for ax, h, v, xlabel, ylabel in views:
            ax.scatter(h[grey], v[grey], s=2, color=GREY, linewidths=0, rasterized=True,
                       label=(f"unassigned / < {min_track_hits} hits" if n_slice_tracks is None
                              else "other hits of the slice"))
            ax.scatter(h[coloured], v[coloured], s=3 if n_slice_tracks is None else 6, c=palette[index[coloured]],
                       linewidths=0, rasterized=True,
                       label=(f"{n_tracks} tracks" if n_slice_tracks is None
                              else f"the {n_tracks} track candidates with most hits in the slice"))
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
        axes[0, 0].set_aspect("equal", adjustable="datalim")
        figure_legend(fig, axes[:, :1], ncol=2, markerscale=4)
        heading = title or ""
        if half < np.pi:
            heading += (f"\nφ slice |φ| < {half:.3f} rad: {len(hits)} of {n_all} hits, {n_slice_tracks} tracks "
                        f"with >= {min_track_hits} hits there")
        if heading:
            fig.suptitle(heading.strip(), fontsize=8)
        save_figure(fig, out)
    return fig
