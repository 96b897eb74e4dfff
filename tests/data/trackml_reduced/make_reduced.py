"""Build the reduced-TrackML fixture from the real (sub-sampled) TrackML event, as REFERENCE 6.3 describes.

Usage: python make_reduced.py <dir with event000000001-*.csv.gz> <out.csv>

Per reduced event: N tracks drawn at random (N uniform in [10, 50], the "TrackML 10-50" set) among the
event's particles that left hits, all their hits, plus the same fraction of the event's noise hits
(the paper reduces without removing noise); rows in the original hits order. The 14 columns are joined
the way TrackFormers' `trackml_data.py` joins them (hits + truth + particles, its `weight_x` = the
truth weight), but with a left join so that noise rows survive with empty particle columns, and are
written with pandas, without header, in the documented column order. Two reduced events, ids 0 and 1 (small fixture).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["x", "y", "z", "volume_id", "vx", "vy", "vz", "px", "py", "pz", "q", "particle_id", "weight", "event_id"]
SEED, N_EVENTS, TRACKS = 20240707, 2, (10, 50)


def reduced_frame(src: Path) -> pd.DataFrame:
    hits = pd.read_csv(src / "event000000001-hits.csv.gz")
    truth = pd.read_csv(src / "event000000001-truth.csv.gz")
    particles = pd.read_csv(src / "event000000001-particles.csv.gz")
    joined = hits.merge(truth[["hit_id", "particle_id", "weight"]], on="hit_id", how="left")
    joined = joined.merge(particles[["particle_id", "vx", "vy", "vz", "px", "py", "pz", "q"]], on="particle_id",
                          how="left")
    rng = np.random.default_rng(SEED)
    with_hits = np.unique(joined.particle_id[joined.particle_id != 0])
    noise_rows = np.flatnonzero(joined.particle_id.to_numpy() == 0)
    frames = []
    for event_id in range(N_EVENTS):
        n = int(rng.integers(TRACKS[0], TRACKS[1] + 1))
        chosen = rng.choice(with_hits, size=n, replace=False)
        n_noise = round(len(noise_rows) * n / len(with_hits))
        noise = rng.choice(noise_rows, size=n_noise, replace=False)
        keep = joined.particle_id.isin(chosen).to_numpy().copy()
        keep[noise] = True
        part = joined[keep].copy()
        part.loc[part.particle_id == 0, ["vx", "vy", "vz", "px", "py", "pz", "q"]] = np.nan
        part["event_id"] = event_id
        frames.append(part[COLUMNS])
    return pd.concat(frames, ignore_index=True)


def main(argv):
    src, out = Path(argv[1]), Path(argv[2])
    reduced_frame(src).to_csv(out, index=False, header=False)


if __name__ == "__main__":
    main(sys.argv)
