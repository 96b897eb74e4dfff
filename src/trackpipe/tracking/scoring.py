"""The TrackML score of one event (REFERENCE 2.2), used to pick clustering parameters on validation.

A reconstructed track counts when more than half of its hits come from one particle and those hits are
more than half of that particle's hits; it then contributes the weight of those common hits. With the
REDVID weights (1 per track hit, 0 for noise) this is the paper's FitAccuracy. The metrics package
owns the full evaluation; this is the small piece model selection needs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def trackml_score(particle_id: np.ndarray, weight: np.ndarray, track_id: np.ndarray) -> float:
    total = float(np.sum(weight))
    if total <= 0:
        return 0.0
    df = pd.DataFrame({"p": np.asarray(particle_id), "t": np.asarray(track_id), "w": np.asarray(weight, np.float64)})
    pair = df.groupby(["t", "p"], sort=False).agg(n=("w", "size"), w=("w", "sum")).reset_index()
    track_n = df.groupby("t").size()
    part_n = df.groupby("p").size()
    # Majority particle of each track (ties: the first listed, as any tie fails the > 1/2 test anyway).
    best = pair.sort_values(["t", "n"], ascending=[True, False], kind="stable").drop_duplicates("t")
    good = ((2 * best.n.to_numpy() > track_n.loc[best.t].to_numpy())
            & (2 * best.n.to_numpy() > part_n.loc[best.p].to_numpy()) & (best.p.to_numpy() != 0))
    return float(best.w.to_numpy()[good].sum() / total)
