"""Simulation benchmark: prints a table of the numbers issue 3 asks for, with their targets.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_sim.py [--repeats 3] [--detectors-csv PATH]

Rows (medians over --repeats runs, one core):
* full <mu> = 200 pixel event (parametric source, TrackML-like layers): pixel hits, fraction of
  charged particles with pT > 0.9 GeV and |eta| < 2.5 leaving >= 3 pixel hits, seconds per event;
* the same with real module planes from a detectors.csv (if given or found in ../shared/data);
* REDVID-like events per minute per core at 10-50 helical and linear tracks: the simulation alone and
  the whole `build_dataset` (simulation, split, writing three stores; what `trackpipe simulate` runs);
* byte identity of two stores written with the same seed (REDVID-like and TrackML-like).
A numpy probe (1e7 sines) timed in the same run is printed as the machine-load baseline; times are
also given as multiples of it, so runs on a loaded machine can be compared.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from trackpipe.datasets import build_dataset
from trackpipe.io.store import write_store
from trackpipe.sim.redvid import simulate_redvid
from trackpipe.sim.trackml_like import simulate_trackml

ROOT = Path(__file__).resolve().parents[1]
SHARED_DETECTORS = ROOT.parent / "shared" / "data" / "trackml" / "detectors.csv.gz"


def probe() -> float:
    x = np.linspace(0, 10, 10_000_000)
    t = time.perf_counter()
    np.sin(x).sum()
    return time.perf_counter() - t


def pixel_event(cfg: dict, index: int):
    t = time.perf_counter()
    ev = next(simulate_trackml(cfg, [index], 2026))
    dt = time.perf_counter() - t
    h, p = ev.hits, ev.particles
    pt = np.hypot(p.px, p.py)
    eta = np.arcsinh(p.pz / pt)
    sel = p.particle_id[(pt > 0.9) & (np.abs(eta) < 2.5)]
    pix = h[(h.particle_id > 0) & h.volume_id.isin([7, 8, 9])]
    n_pix = pix.groupby("particle_id").size().reindex(sel, fill_value=0)
    return dt, int(h.volume_id.isin([7, 8, 9]).sum()), float((n_pix >= 3).mean()), int(len(sel))


def redvid_rate(types, n_events: int, build: bool) -> float:
    """Events per minute: the simulator alone, or `build_dataset` (what `trackpipe simulate` runs)."""
    section = {"redvid": {"track_types": types, "n_tracks": [10, 50]}}
    t = time.perf_counter()
    if build:
        with tempfile.TemporaryDirectory() as d:
            build_dataset("redvid-helical-10-50", section, Path(d) / "ds", n_events=n_events, seed=7, plots=False)
    else:
        for _ in simulate_redvid(section["redvid"], range(n_events), 7):
            pass
    return n_events / (time.perf_counter() - t) * 60.0


def digest(path: Path) -> dict:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.iterdir())}


def byte_identity(make) -> bool:
    with tempfile.TemporaryDirectory() as d:
        a = write_store(Path(d) / "a", make())
        b = write_store(Path(d) / "b", make())
        return digest(a) == digest(b)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--redvid-events", type=int, default=2048)
    ap.add_argument("--detectors-csv", default=str(SHARED_DETECTORS) if SHARED_DETECTORS.exists() else None)
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    rows = []
    base = statistics.median(probe() for _ in range(3))
    rows.append(("machine probe: 1e7 numpy sines [s]", f"{base:.3f}", "baseline", ""))

    pixel = {"volumes": [7, 8, 9], "generator": {"source": "parametric", "mu": 200}}
    runs = [pixel_event(pixel, i) for i in range(args.repeats)]
    sec = statistics.median(r[0] for r in runs)
    hits = statistics.median(r[1] for r in runs)
    frac = min(r[2] for r in runs)
    rows += [
        ("mu=200 pixel event: pixel hits (median)", f"{hits:.0f}", "40000-80000", _ok(40_000 <= hits <= 80_000)),
        ("pT>0.9, |eta|<2.5 with >=3 pixel hits (worst event)", f"{frac:.4f} (n={runs[0][3]})", ">= 0.98",
         _ok(frac >= 0.98)),
        ("mu=200 pixel event: seconds/event, 1 core", f"{sec:.2f} ({sec / base:.1f} x probe)", "< 2", _ok(sec < 2)),
    ]
    if args.detectors_csv:
        real = dict(pixel, detectors_csv=args.detectors_csv)
        pixel_event(real, 0)  # module table and KD-trees are built per call; keep the timing comparable
        runs = [pixel_event(real, i) for i in range(args.repeats)]
        rows += [
            ("  with real modules (detectors.csv): pixel hits", f"{statistics.median(r[1] for r in runs):.0f}",
             "info", ""),
            ("  with real modules: >=3 pixel hits fraction", f"{min(r[2] for r in runs):.4f}", "info", ""),
            ("  with real modules: seconds/event", f"{statistics.median(r[0] for r in runs):.2f}", "info", ""),
        ]
    for types in (["helical_expanding"], ["linear"]):
        for write in (False, True):
            rate = statistics.median(redvid_rate(types, args.redvid_events, write) for _ in range(args.repeats))
            label = f"REDVID {types[0]} 10-50: events/min/core" + (", build_dataset" if write else ", simulation")
            rows.append((label, f"{rate:,.0f}", ">= 10000", _ok(rate >= 10_000)))
    same_rv = byte_identity(lambda: simulate_redvid({"noise_fraction": 0.05}, range(300), 11))
    same_tml = byte_identity(lambda: simulate_trackml({"volumes": [7, 8, 9], "generator": {"mu": 20}}, [0, 1], 11))
    rows.append(("same seed -> byte-identical store (REDVID, TrackML)", f"{same_rv}, {same_tml}", "True, True",
                 _ok(same_rv and same_tml)))

    width = max(len(r[0]) for r in rows)
    print(f"bench_sim (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, repeats={args.repeats})")
    print(f"{'quantity'.ljust(width)} | {'value':>26} | {'target':>12} | ok")
    print("-" * (width + 50))
    for name, value, target, ok in rows:
        print(f"{name.ljust(width)} | {value:>26} | {target:>12} | {ok}")


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


if __name__ == "__main__":
    main()
