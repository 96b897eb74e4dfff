"""Validation plots of a dataset: hits per particle, hit r-z map, pT and eta spectra, hits per event.

For TrackML-like data the plots show the pixel part (volumes 7-9) and the same distributions of a
real TrackML event's pixel part are overlaid, normalised to unit area, so a reader sees how close the
simulation is. The real event in ../shared/data/trackml is a subsample: its hits-per-event count is
shown as a marker only. REDVID-like data have no momenta: the pT panel shows the tracks' curvature
parameter instead and eta is taken from the hit positions.

`validation_plots` writes one PNG per figure plus `summary.json` with the plotted numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io.atomic import atomic_path, write_json
from ..io.store import EventStore
from ..schema import PIXEL_VOLUMES
from .style import figure_legend, log_axis, new_figure, style

_MAX_RZ_POINTS = 200_000


#: Fixed looks of the two series every validation figure compares.
SERIES = {"simulation": {"color": "#000000"}, "real TrackML": {"color": "#d62728"}}


def _figure():
    return new_figure(width=4.6, height=3.2)


def _save(fig, path: Path) -> Path:
    with style(), atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    return path


def _hist(values_by_label: dict, path: Path, *, xlabel: str, bins, logy=False, logx=False, title="") -> Path:
    """Unit-area histograms (steps) with their statistical error (sqrt(n) per bin, scaled the same way)."""
    with style():
        fig, axes = _figure()
        ax = axes[0, 0]
        for label, v in values_by_label.items():
            v = np.asarray(v, float)
            v = v[np.isfinite(v)]
            if not len(v):
                continue
            counts, edges = np.histogram(v, bins=bins)
            scale = 1.0 / (counts.sum() * np.diff(edges))
            colour = SERIES.get(label, {}).get("color")
            ax.stairs(counts * scale, edges, color=colour, linewidth=1.4, label=f"{label} (n={len(v)})")
            centres = np.sqrt(edges[:-1] * edges[1:]) if logx else 0.5 * (edges[:-1] + edges[1:])
            filled = counts > 0
            ax.errorbar(centres[filled], (counts * scale)[filled], yerr=(np.sqrt(counts) * scale)[filled], fmt="none",
                        ecolor=colour, elinewidth=0.8, label=f"_{label} stat. error")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("normalised entries")
        if logy:
            log_axis(ax, "y")
        if logx:
            log_axis(ax, "x")
        ax.set_title(title)
        figure_legend(fig, axes, ncol=2, title="bars: statistical error (sqrt n)")
        return _save(fig, path)


def _rz_map(sim_hits: pd.DataFrame, ref_hits: pd.DataFrame | None, path: Path, title="") -> Path:
    with style():
        fig, axes = _figure()
        ax = axes[0, 0]
        r = np.hypot(sim_hits.x, sim_hits.y)
        *_, image = ax.hist2d(sim_hits.z, r, bins=(300, 150), cmin=1, cmap="viridis", rasterized=True)
        fig.colorbar(image, ax=ax, label="simulated hits per bin")
        if ref_hits is not None and len(ref_hits):
            ax.scatter(ref_hits.z, np.hypot(ref_hits.x, ref_hits.y), s=1, c=SERIES["real TrackML"]["color"], alpha=0.5,
                       label="real TrackML", rasterized=True)
            figure_legend(fig, axes, markerscale=5)
        ax.set_xlabel("z [mm]")
        ax.set_ylabel("r [mm]")
        ax.set_title(title)
        return _save(fig, path)


def _particle_kinematics(particles: pd.DataFrame, hits: pd.DataFrame):
    """(pT or curvature, label, eta) per particle with hits."""
    p = particles[particles.nhits > 0]
    pt = np.hypot(p.px, p.py).to_numpy(float)
    if np.any(pt > 0):
        eta = np.arcsinh(p.pz.to_numpy(float) / np.where(pt > 0, pt, np.nan))
        return pt, "pT [GeV]", eta
    # REDVID: eta of each track from its hits (z / r of the hit farthest out), curvature from parameters.
    h = hits[hits.particle_id > 0]
    r = np.hypot(h.x, h.y)
    far = h.assign(r=r).sort_values("r").groupby(["event_id", "particle_id"]).tail(1)
    eta = np.arcsinh(far.z / far.r).to_numpy(float)
    for col, label in (("radial_coeff", "radial_coeff a [mm/rad]"), ("radial_const", "helix radius [mm]"),
                       ("r_d", "r_d")):
        if col in p.columns and p[col].abs().sum() > 0:
            return p[col].to_numpy(float), label, eta
    return np.zeros(0), "pT", eta


def _reference(path, volumes):
    from ..io.trackml import TrackMLSource
    from ..reduce import select_volumes

    src = TrackMLSource(path)
    ev = src.read_event(src.event_ids[0], with_cells=False)
    if volumes:
        ev = select_volumes(ev, volumes)
    return ev


def validation_plots(stores, out_dir, *, kind: str = "trackml", reference_trackml=None, volumes=PIXEL_VOLUMES,
                     max_events: int = 200) -> dict:
    """Write the validation figures of the given stores (all splits of a dataset) into `out_dir`.

    TrackML-like data are shown for the hits of `volumes` (default the pixel part, as the overlay of
    the real event; None keeps everything), with particles' hit counts recounted on that part.
    """
    from ..reduce import select_volumes

    out_dir = Path(out_dir)
    hits, parts = [], []
    for s in stores:
        st = EventStore(s)
        for eid in st.event_ids[:max_events]:
            ev = st.read_event(eid)
            if kind == "trackml" and volumes:
                ev = select_volumes(ev, volumes)
            hits.append(ev.hits)
            parts.append(ev.particles)
    hits = pd.concat(hits, ignore_index=True)
    parts = pd.concat(parts, ignore_index=True)
    per_event = hits.groupby("event_id").size().to_numpy()
    ref = _reference(reference_trackml, volumes) if (reference_trackml and kind == "trackml") else None
    part = " (pixel part)" if kind == "trackml" and volumes and set(volumes) <= set(PIXEL_VOLUMES) else ""
    kind = f"{kind}{part}"
    sim, real = "simulation", "real TrackML"

    def with_ref(sim_values, ref_values):
        return {sim: sim_values} if ref is None else {sim: sim_values, real: ref_values}

    nh = parts.nhits[parts.nhits > 0].to_numpy()
    pt, pt_label, eta = _particle_kinematics(parts, hits)
    files = []
    ref_nh = ref_pt = ref_eta = None
    if ref is not None:
        ref_nh = ref.particles.nhits[ref.particles.nhits > 0].to_numpy()
        ref_pt, _, ref_eta = _particle_kinematics(ref.particles, ref.hits)
    top = max(int(nh.max(initial=1)), int(ref_nh.max(initial=1)) if ref_nh is not None else 1)
    files.append(_hist(with_ref(nh, ref_nh), out_dir / "hits_per_particle.png", xlabel="hits per particle",
                       bins=np.arange(0.5, top + 1.5), title=f"{kind}: hits per particle"))
    sample = hits.sample(n=min(len(hits), _MAX_RZ_POINTS), random_state=0) if len(hits) > _MAX_RZ_POINTS else hits
    files.append(_rz_map(sample, None if ref is None else ref.hits, out_dir / "hits_rz.png", title=f"{kind}: hit r-z map"))
    if len(pt):
        logx = pt_label.startswith("pT")
        bins = np.geomspace(max(pt[pt > 0].min(initial=0.05), 0.05), max(pt.max(), 1.0), 50) if logx else 50
        files.append(_hist(with_ref(pt, ref_pt), out_dir / "pt.png", xlabel=pt_label, bins=bins, logx=logx, logy=logx,
                           title=f"{kind}: {pt_label.split(' [')[0]} spectrum"))
    files.append(_hist(with_ref(eta, ref_eta), out_dir / "eta.png", xlabel="eta", bins=np.linspace(-4.5, 4.5, 61),
                       title=f"{kind}: eta"))
    with style():
        fig, axes = _figure()
        ax = axes[0, 0]
        counts, edges = np.histogram(per_event, bins=30)
        ax.stairs(counts, edges, color=SERIES[sim]["color"], linewidth=1.4,
                  label=f"simulation ({len(per_event)} events)")
        filled = counts > 0
        ax.errorbar(0.5 * (edges[:-1] + edges[1:])[filled], counts[filled], yerr=np.sqrt(counts[filled]), fmt="none",
                    ecolor=SERIES[sim]["color"], elinewidth=0.8, label="_stat. error")
        if ref is not None:
            ax.axvline(len(ref.hits), color=SERIES[real]["color"], ls="--", label="real TrackML (subsampled event)")
        ax.set_xlabel("hits per event")
        ax.set_ylabel("events")
        figure_legend(fig, axes, ncol=2, title="bars: statistical error (sqrt n)")
        files.append(_save(fig, out_dir / "hits_per_event.png"))
    summary = {
        "events": int(len(per_event)), "hits_per_event_mean": float(per_event.mean()),
        "hits_per_particle_mean": float(nh.mean()) if len(nh) else 0.0,
        "noise_fraction": float((hits.particle_id == 0).mean()),
        "eta_abs_mean": float(np.nanmean(np.abs(eta))) if len(eta) else 0.0,
        "figures": [p.name for p in files],
    }
    if ref is not None:
        summary["reference"] = {"hits_per_particle_mean": float(ref_nh.mean()),
                                "noise_fraction": float((ref.hits.particle_id == 0).mean()),
                                "eta_abs_mean": float(np.nanmean(np.abs(ref_eta))),
                                "pt_median": float(np.median(ref_pt)), "path": str(reference_trackml)}
        summary["pt_median"] = float(np.median(pt))
    write_json(out_dir / "summary.json", summary)
    return summary
