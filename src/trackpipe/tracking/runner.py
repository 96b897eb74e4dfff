"""Run a per-event tracker over a store: submission CSV plus honest per-event timing.

Timing CSV columns: `trackpipe.schema.TIMING` (the contract read by `trackpipe.evaluate`). The
paper's Table 2 splits the work into a CPU side (pre/post-processing: binning, clustering, track
building) and a GPU side (the network). A classical tracker such as helix-dbscan has no network: all
its work, the clustering included, is CPU side (`host_cpu_ms`, process time) and its `device_ms` is
empty (NaN), never its clustering time filed as device time.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..io.atomic import write_csv
from ..io.store import EventStore
from ..io.submission import write_submission
from ..progress import progress

from ..schema import TIMING


def run_tracker(store_path, tracker, out_csv, *, timing_csv=None, desc="predict", warmup: int = 1) -> pd.DataFrame:
    """`tracker(event) -> (track_ids, {"device_s": ..., "host_cpu_s": ...})` for every event of the store.

    `device_s` is the time of the model's forward pass, or None for a tracker without a network (its
    `device_ms` is then NaN: it has no GPU side); `host_cpu_s` is the process time of everything else
    the tracker did for the event (for a classical tracker: all of it). `warmup` untimed calls on the
    first event run the tracker's whole per-event work before the first timed event.
    """
    store = EventStore(store_path)
    # Untimed passes over the first event (imports, allocator), as `predict` does for the models: every
    # timing row is then a measurement, and a one-event test split still gets a time.
    for _ in range(min(warmup, 1) if len(store) else 0):
        tracker(store.read_event(store.event_ids[0]))
    parts, rows = [], []
    for event in progress(store.iter_events(), total=len(store), desc=desc, unit="event"):
        wall0 = time.perf_counter()
        track_ids, t = tracker(event)
        wall = time.perf_counter() - wall0
        track_ids = np.asarray(track_ids, dtype=np.int64)
        if len(track_ids) != len(event.hits):
            raise RuntimeError(f"tracker returned {len(track_ids)} labels for {len(event.hits)} hits "
                               f"(event {event.event_id})")
        parts.append(pd.DataFrame({"event_id": event.event_id, "hit_id": event.hits.hit_id.to_numpy(np.int64),
                                   "track_id": track_ids}))
        device_ms = np.nan if t.get("device_s") is None else 1e3 * t["device_s"]
        rows.append({"event_id": event.event_id, "n_hits": len(event.hits), "device_ms": device_ms,
                     "host_cpu_ms": 1e3 * t["host_cpu_s"], "wall_ms": 1e3 * wall,
                     "device": "cpu"})
    submission = pd.concat(parts, ignore_index=True)
    write_submission(out_csv, submission)
    if timing_csv is not None:
        write_csv(timing_csv, pd.DataFrame(rows, columns=TIMING.names))
    return submission


def helix_dbscan_tracker(params: dict | None = None):
    from .helix_dbscan import helix_dbscan_labels

    def track(event):
        cpu0 = time.process_time()
        p = dict(params or {})
        if p.get("unrolling", "auto") == "auto":
            p["unrolling"] = "linear" if "track_type" in event.particles.columns else "helix"
        h = event.hits
        labels = helix_dbscan_labels(h.x.to_numpy(), h.y.to_numpy(), h.z.to_numpy(), p)
        # No network: the unrolling and the DBSCAN clustering are the CPU side, nothing is GPU side.
        return labels, {"device_s": None, "host_cpu_s": time.process_time() - cpu0}

    return track
