"""Speed of the metrics: TrackML score of a full-size event, and the bootstrap of binned efficiencies.

Run from the repository root:  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_metrics.py [--repeats 5]

Targets (issue 4): score of a 100 000-hit event with 10 000 tracks < 0.3 s on one core; a 1 000-event
bootstrap of binned efficiencies < 10 s. The baseline is the literal per-track Python loop of the tests
(tests/metrics/metrics_reference.py) on a smaller event, scaled per hit; the table prints medians.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "metrics"))

from metrics_reference import reference_score  # noqa: E402
from trackpipe.metrics import binned_rates, match_tables, trackml_score, tracking_metrics  # noqa: E402


def full_event(rng, n_particles: int, n_noise: int):
    """TrackML-sized event: particles with 3-13 hits (mean 8), noise, and an imperfect submission with
    one track per particle: noise hits attached to random tracks, 10 % of all hits moved to other tracks."""
    nh = rng.integers(3, 14, n_particles)
    pids = np.unique(rng.integers(1, 2**62, size=n_particles + 10))[:n_particles]
    pid = np.concatenate([np.repeat(pids, nh), np.zeros(n_noise, np.int64)])
    n = len(pid)
    layer = rng.integers(0, 20, n)
    hits = pd.DataFrame({"event_id": np.int64(1), "hit_id": rng.permutation(n).astype(np.int64) + 1,
                         "particle_id": pid, "weight": rng.random(n) * (pid != 0),
                         "volume_id": (7 + layer // 7).astype(np.int32), "layer_id": (2 * (layer % 7) + 2).astype(np.int32)})
    track = pid.copy()
    track[pid == 0] = rng.choice(pids, n_noise)
    moved = rng.random(n) < 0.1
    track[moved] = rng.choice(track, moved.sum())
    sub = pd.DataFrame({"event_id": np.int64(1), "hit_id": hits.hit_id.to_numpy(), "track_id": track})
    pt = rng.exponential(1.0, n_particles)
    phi = rng.uniform(-np.pi, np.pi, n_particles)
    particles = pd.DataFrame({"event_id": np.int64(1), "particle_id": pids, "px": pt * np.cos(phi),
                              "py": pt * np.sin(phi), "pz": pt * np.sinh(rng.uniform(-4, 4, n_particles)),
                              "vz": rng.normal(0, 55, n_particles)})
    return hits.sample(frac=1.0, random_state=1).reset_index(drop=True), particles, sub


def tables(rng, n_events: int, per_event: int):
    """Particle and cluster match tables of `n_events` events with `per_event` rows each."""
    n = n_events * per_event
    pt = rng.exponential(1.0, n)
    common = {"event_id": np.repeat(np.arange(n_events), per_event), "reconstructable": rng.random(n) < 0.9, "pt": pt,
              "eta": rng.uniform(-4.5, 4.5, n), "phi": rng.uniform(-np.pi, np.pi, n), "vz": rng.normal(0, 55, n)}
    p = pd.DataFrame(common | {"dm_matched": rng.random(n) < 0.8 * (1 - np.exp(-pt)),
                               "perfect_matched": rng.random(n) < 0.5})
    c = pd.DataFrame(common | {"valid": rng.random(n) < 0.9, "dm_match": rng.random(n) < 0.85,
                               "perfect_match": rng.random(n) < 0.5, "lhc_match": rng.random(n) < 0.9,
                               "duplicate": rng.random(n) < 0.02})
    return p, c


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--bootstrap-events", type=int, default=1000)
    ap.add_argument("--rows-per-event", type=int, default=1000, help="selected particles / clusters per event")
    args = ap.parse_args()
    rng = np.random.default_rng(0)

    hits, particles, sub = full_event(rng, 10_000, 20_000)
    n_tracks = sub.track_id.nunique()
    t_score = median_time(lambda: trackml_score(hits, sub), args.repeats)
    t_all = median_time(lambda: tracking_metrics(hits, particles, sub), args.repeats)

    small_hits, _, small_sub = full_event(rng, 1_000, 2_000)
    rows = list(zip(small_hits.hit_id, small_hits.particle_id, small_hits.weight))
    assignment = dict(zip(small_sub.hit_id, small_sub.track_id))
    t_ref_small = median_time(lambda: reference_score(rows, assignment), max(1, args.repeats // 2))
    ref_value, fast_value = reference_score(rows, assignment), trackml_score(small_hits, small_sub)
    t_fast_small = median_time(lambda: trackml_score(small_hits, small_sub), args.repeats)
    t_ref_scaled = t_ref_small * len(hits) / len(small_hits)

    p, c = tables(rng, args.bootstrap_events, args.rows_per_event)
    t_boot = median_time(lambda: binned_rates(p, c, variables=("pt", "eta", "phi", "vz"), n_resamples=1000, seed=0),
                         max(1, args.repeats // 2))
    ptab, ctab = match_tables(hits, particles, sub)
    t_boot_one = median_time(lambda: binned_rates(ptab, ctab, n_resamples=1000, seed=0), args.repeats)

    print(f"{'benchmark':<62} {'median s':>9} {'target':>8}")
    print(f"{f'trackml_score, {len(hits)} hits, {n_tracks} tracks':<62} {t_score:9.3f} {'< 0.3':>8}")
    print(f"{'tracking_metrics (all efficiencies, same event)':<62} {t_all:9.3f} {'':>8}")
    print(f"{f'reference per-track loop, {len(small_hits)} hits':<62} {t_ref_small:9.3f} {'':>8}")
    print(f"{f'trackml_score, same {len(small_hits)} hits':<62} {t_fast_small:9.4f} {'':>8}")
    print(f"{'reference loop scaled to the full event (per hit)':<62} {t_ref_scaled:9.3f} {'':>8}")
    print(f"{'speed-up vs reference, full event':<62} {t_ref_scaled / t_score:8.0f}x {'':>8}")
    print(f"{'  (scores agree on the small event: |diff|)':<62} {abs(ref_value - fast_value):9.1e} {'':>8}")
    print(f"{f'binned_rates, {args.bootstrap_events} events x {args.rows_per_event} rows, 1000 resamples':<62} "
          f"{t_boot:9.3f} {'< 10':>8}")
    print(f"{'binned_rates, the 100k-hit event, pt/eta, 1000 resamples':<62} {t_boot_one:9.3f} {'':>8}")


if __name__ == "__main__":
    main()
