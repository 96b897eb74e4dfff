"""The clustering comparison of the slides (per algorithm and region), over the events of a dataset."""

from __future__ import annotations

import time

import numpy as np

from .blocks import build_blocks
from .events import open_events, pixel_hits
from .metrics import locality_metrics
from .pipeline import cluster_event


def compare_clustering(data, algorithms, params: dict, *, volumes=(7, 8, 9), max_events=None) -> dict:
    """{algorithm: {region: {metric: mean over events}}}; regions barrel, endcap, all.

    Every region's row also names itself (``region``) and carries, beside the reconstructible ratio and the
    attention fraction, ``full_containment`` and ``oracle_dm_efficiency`` (``metrics.locality_metrics``): the
    ceiling the neighbourhoods put on the tracker.
    """
    import sklearn.cluster  # noqa: F401  (imported before timing: the first DBSCAN call must not pay for it)

    event_ids, read = open_events(data)
    event_ids = event_ids[:max_events] if max_events else event_ids
    clustering = params.get("clustering", {})
    out = {}
    for algo in algorithms:
        rows = []
        for eid in event_ids:
            ev = read(eid)
            hits = pixel_hits(ev.hits, volumes, event=eid)
            result = cluster_event(hits, algo, clustering.get(algo), params.get("projection"), event=eid)
            t0 = time.perf_counter()
            build_blocks(result.hit_index, result.cluster_id, result.n_hits, params.get("blocks"))
            t_blocks = time.perf_counter() - t0
            t0 = time.perf_counter()
            m = locality_metrics(hits, ev.particles, result, params.get("metrics"), event=eid, oracle=True)
            t_oracle = time.perf_counter() - t0
            for region in m:
                m[region]["seconds_per_event"] = result.seconds.get(region, result.seconds["total"])
            m["all"]["block_seconds_per_event"] = t_blocks
            m["all"]["oracle_seconds_per_event"] = t_oracle
            rows.append(m)
        out[algo] = {region: {key: float(np.nanmean([r[region][key] for r in rows])) for key in rows[0][region]}
                     for region in rows[0]}
        for region in out[algo]:
            out[algo][region]["n_events"] = len(rows)
            out[algo][region]["region"] = region
    return out
