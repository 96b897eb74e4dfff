"""What the locality windows hold, and what track formation makes of a trained contrastive model's embedding.

    python benchmarks/bench_track_formation.py --data STORE [--model-dir DIR] [--events 1] [--k 6]

Printed tables (the first events of STORE, e.g. a validation split of `trackpipe simulate --dataset
hllhc-pixel`):
 1. per region, the default locality windows (or the model's): tokens per window, particles per window
    (all / pT > 0.9 GeV) and the contrastive loss at chance (log of the keys per anchor, averaged over
    the anchors that have a positive);
 2. with --model-dir: the model's kNN edges from the hits of central-barrel particles (|eta| < 1.5,
    pT > 0.9 GeV): the fraction that join two hits of one particle and the mean cosine of true and
    false edges;
 3. with --model-dir: DM efficiency (pT > 0.9 GeV) per region and the largest track, for track formation
    by connected components (with and without mutual kNN) and by layer-constrained greedy building
    (limits 1 and 2; 1 also on mutual kNN edges), at several thresholds; layer limit 1 after a geometric edge cut (|z0| < 150 mm,
    |dphi/dr| < 6e-4 /mm), the cut that seeding uses; layer limit 1 with the helix test of `tracking.helix`
    (tolerances: the 0.99 quantile of this event's true particles, as the selection calibrates them); and
    layer limit 1 on the true candidate edges only (what the k candidates allow: the ceiling of any
    test that only removes edges). Each row also gives the track-formation wall time (the helix test's
    triplet support is computed once per variant, as the selection does, and counted in its first row).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def window_table(hits, particles, result) -> list[dict]:
    pid = hits.particle_id.to_numpy()
    pt = pd.Series(np.hypot(particles.px, particles.py).to_numpy(), index=particles.particle_id.to_numpy())
    high = pd.Series(pid).map(pt).fillna(0.0).to_numpy() > 0.9
    rows = []
    for code, name in ((0, "barrel"), (1, "endcap")):
        clusters = np.flatnonzero(result.cluster_region == code)
        sel = np.isin(result.cluster_id, clusters)
        m = pd.DataFrame({"c": result.cluster_id[sel], "p": pid[result.hit_index[sel]],
                          "high": high[result.hit_index[sel]]})
        sizes = m.groupby("c").size()
        particles_per = m[m.p > 0].groupby("c").p.nunique()
        high_per = m[m.high].groupby("c").p.nunique()
        pos = m[m.p > 0].groupby(["c", "p"]).size().rename("n_particle").reset_index()
        anchors = m[m.high].merge(sizes.rename("n").reset_index(), on="c").merge(pos, on=["c", "p"])
        anchors = anchors[anchors.n_particle > 1]
        rows.append({"region": name, "windows": len(clusters), "tokens_mean": sizes.mean(),
                     "tokens_median": sizes.median(), "tokens_p90": sizes.quantile(0.9),
                     "particles": particles_per.mean(), "particles_pt0.9": high_per.mean(),
                     "chance_loss": float(np.log(anchors.n - 1).mean())})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="an event store (e.g. the val split of hllhc-pixel)")
    ap.add_argument("--model-dir", help="a trained contrastive model (trackpipe train --model contrastive)")
    ap.add_argument("--events", type=int, default=1)
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from trackpipe.device import set_threads
    from trackpipe.io.store import EventStore
    from trackpipe.locality.events import pixel_hits
    from trackpipe.locality.latency import region_efficiency
    from trackpipe.locality.pipeline import cluster_event
    from trackpipe.models.attention import AttentionMask
    import time

    from trackpipe.tracking.embedding import candidate_edges, hit_layers, tracks_from_edges
    from trackpipe.tracking.helix import HelixTest, calibrate_tolerance
    from trackpipe.train.locality import LOCALITY_DEFAULTS, blocks_for_event, locality_settings

    set_threads(args.threads)
    model = cfg = prep = None
    settings = dict(LOCALITY_DEFAULTS)
    if args.model_dir:
        from trackpipe.predict import load_model

        model, cfg, prep = load_model(args.model_dir, torch.device("cpu"))
        settings = locality_settings(cfg)
    store = EventStore(args.data)
    for eid in store.event_ids[:args.events]:
        ev = store.read_event(eid)
        hits, particles = pixel_hits(ev.hits, event=eid).reset_index(drop=True), ev.particles
        result = cluster_event(hits, settings["algorithm"], settings["clustering"] or None,
                               settings["projection"] or None)
        print(f"\nevent {eid}: {len(hits)} pixel hits, {settings['algorithm']} windows")
        print("1. region  windows  tokens/window mean/median/p90  particles/window  of them pT>0.9  loss at chance")
        for r in window_table(hits, particles, result):
            print(f"   {r['region']:7s} {r['windows']:8d}  {r['tokens_mean']:9.1f} / {r['tokens_median']:4.0f} / "
                  f"{r['tokens_p90']:4.0f}  {r['particles']:16.1f}  {r['particles_pt0.9']:14.1f}  {r['chance_loss']:14.2f}")
        if model is None:
            continue
        blocks = blocks_for_event(eid, hits, settings)
        x = torch.from_numpy(prep.inputs(hits))[None]
        valid = torch.ones(x.shape[:2], dtype=torch.bool)
        with torch.inference_mode():
            emb = model({"x": x, "valid": valid, "mask": AttentionMask(valid, extra={"blocks": blocks})})["embedding"][0]
        src, dst, sim = candidate_edges(emb, blocks, method="knn", k=args.k)
        pid = hits.particle_id.to_numpy()
        p = particles.set_index("particle_id")
        pt, eta = np.hypot(p.px, p.py), np.arcsinh(p.pz / np.hypot(p.px, p.py))
        central = np.isin(pid, p.index[(pt > 0.9) & (np.abs(eta) < 1.5)])[src]
        true = (pid[src] == pid[dst]) & (pid[src] > 0)
        print(f"2. kNN edges (k {args.k}) from central-barrel pT > 0.9 GeV hits: {int(central.sum())}, "
              f"{true[central].mean():.3f} true; mean cosine true {sim[central & true].mean():.3f}, "
              f"false {sim[central & ~true].mean():.3f}")
        layer = hit_layers(hits)
        x_, y_, z_ = hits.x.to_numpy(), hits.y.to_numpy(), hits.z.to_numpy()
        r_, phi_ = np.hypot(x_, y_), np.arctan2(y_, x_)
        dr = r_[dst] - r_[src]
        safe = np.where(dr < 0, np.minimum(dr, -1.0), np.maximum(dr, 1.0))
        z0 = z_[src] - r_[src] * (z_[dst] - z_[src]) / safe
        dphi = np.remainder(phi_[dst] - phi_[src] + np.pi, 2 * np.pi) - np.pi
        cut = (np.abs(z0) < 150) & (np.abs(dphi / safe) < 6e-4)
        xyz = hits[["x", "y", "z"]].to_numpy(np.float64)
        hit_pt = pd.Series(pid).map(pt).fillna(0.0).to_numpy()
        tolerance = calibrate_tolerance([(xyz, pid, hit_pt, layer)], 0.99)
        helix = None if tolerance is None else HelixTest(xyz, tolerance)
        variants = [("components, mutual kNN", True, 0, None, None), ("components", False, 0, None, None),
                    ("layer limit 1", False, 1, None, None), ("layer limit 1, mutual kNN", True, 1, None, None),
                    ("layer limit 2", False, 2, None, None),
                    ("layer limit 1 + geometric cut", False, 1, cut, None),
                    ("layer limit 1 + helix test", False, 1, None, helix),
                    ("layer limit 1, true edges only", False, 1, true, None)]
        print(f"3. track formation (k {args.k}; helix tolerance {tolerance} mm²)")
        print("   variant                          threshold  DM barrel  DM endcap  DM all  largest track  seconds")
        for name, mutual, limit, keep, test in variants:
            if test is None and name.endswith("helix test"):
                continue  # no true particle with >= 3 layers to calibrate on
            s, d, v = (src, dst, sim) if keep is None else (src[keep], dst[keep], sim[keep])
            t0 = time.perf_counter()
            supported = None if test is None else test.supported(s, d, layer)
            for thr in (0.0, 0.5, 0.9, 0.95, 0.98):
                tracks = tracks_from_edges(len(hits), s, d, v, threshold=thr, mutual=mutual, max_hits_per_layer=limit,
                                           layer=layer, helix=test, supported=supported)
                seconds, t0 = time.perf_counter() - t0, time.perf_counter()
                sub = pd.DataFrame({"event_id": np.int64(eid), "hit_id": hits.hit_id.to_numpy(), "track_id": tracks})
                dm = region_efficiency(hits, particles, sub)["regions"]
                print(f"   {name:32s} {thr:9g}  {dm['barrel']['dm_efficiency']:9.3f}  {dm['endcap']['dm_efficiency']:9.3f}"
                      f"  {dm['all']['dm_efficiency']:6.3f}  {np.bincount(tracks).max():13d}  {seconds:7.2f}")
                t0 = time.perf_counter()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
