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

_MAX_RZ_POINTS = 200_000


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(6, 4.2))


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _hist(values_by_label: dict, path: Path, *, xlabel: str, bins, logy=False, logx=False, title="") -> Path:
    plt, fig, ax = _figure()
    for label, v in values_by_label.items():
        v = np.asarray(v, float)
        v = v[np.isfinite(v)]
        if len(v):
            ax.hist(v, bins=bins, histtype="step", density=True, lw=1.5, label=f"{label} (n={len(v)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("normalised entries")
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def _rz_map(sim_hits: pd.DataFrame, ref_hits: pd.DataFrame | None, path: Path, title="") -> Path:
    plt, fig, ax = _figure()
    r = np.hypot(sim_hits.x, sim_hits.y)
    ax.hist2d(sim_hits.z, r, bins=(300, 150), cmin=1, cmap="viridis")
    if ref_hits is not None and len(ref_hits):
        ax.scatter(ref_hits.z, np.hypot(ref_hits.x, ref_hits.y), s=1, c="red", alpha=0.5, label="real TrackML")
        ax.legend(fontsize=8, loc="upper left")
    ax.set_xlabel("z [mm]")
    ax.set_ylabel("r [mm]")
    ax.set_title(title)
    return _save(plt, fig, path)


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
    plt, fig, ax = _figure()
    ax.hist(per_event, bins=30, histtype="step", lw=1.5, label=f"simulation ({len(per_event)} events)")
    if ref is not None:
        ax.axvline(len(ref.hits), color="red", ls="--", label="real TrackML (subsampled event)")
    ax.set_xlabel("hits per event")
    ax.set_ylabel("events")
    ax.legend(fontsize=8)
    files.append(_save(plt, fig, out_dir / "hits_per_event.png"))
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
