"""Small, realistic fake result files (fixed seed) in the layout the evaluation stages write.

A helper module (not a conftest) so the tests can import its builders by a unique name."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")

DATASETS = ["redvid-linear-10-50", "redvid-helical-10-50", "redvid-helical-50-100", "trackml-10-50",
            "trackml-200-500"]
RUN_MODELS = ["enccla", "encreg", "helix-dbscan"]
NOT_RUN = ("trackml-200-500", "helix-dbscan")   # a configured pair whose metrics.json does not exist
BINNED_DATASETS = ["trackml-10-50", "trackml-200-500"]
DISPLAY = ("trackml-10-50", "helix-dbscan")
LOCALITY_DATASET = "hllhc-pixel"
TIMING_KEYS = ("device_ms", "host_cpu_ms", "wall_ms")


def fake_metrics(rng, device="cpu") -> dict:
    m = {k: float(rng.uniform(0.2, 0.99)) for k in ("trackml_score", "fit_accuracy", "dm_efficiency",
                                                    "perfect_efficiency", "lhc_efficiency")}
    m.update(fake_rate=float(rng.uniform(0, 0.3)), duplicate_rate=float(rng.uniform(0, 0.1)), n_events=30,
             device=device)
    for key in TIMING_KEYS:
        median = float(rng.uniform(0.05, 500))
        m[f"{key}_median"], m[f"{key}_p90"] = median, median * float(rng.uniform(1.05, 1.6))
    if device == "none":   # a tracker without a network (helix-dbscan): no GPU side at all
        m.update(device="cpu", device_ms_median=None, device_ms_p90=None)
    return m


def device_of(model: str) -> str:
    """Where the fake results say each model ran: encreg on a GPU, helix-dbscan has no network."""
    return {"encreg": "cuda", "helix-dbscan": "none"}.get(model, "cpu")


def fake_per_event(rng, n_events=30) -> pd.DataFrame:
    n_particles = rng.integers(10, 500, n_events)
    return pd.DataFrame({"event_id": np.arange(n_events, dtype=np.int64), "n_particles": n_particles,
                         "n_hits": n_particles * 9, "trackml_score": rng.uniform(0.5, 1, n_events),
                         "dm_efficiency": rng.uniform(0.5, 1, n_events), "fake_rate": rng.uniform(0, 0.2, n_events)})


def fake_timing(rng, per_event: pd.DataFrame) -> pd.DataFrame:
    n = per_event.n_particles.to_numpy()
    noise = rng.lognormal(0, 0.1, (3, len(n)))
    return pd.DataFrame({"event_id": per_event.event_id, "n_hits": per_event.n_hits,
                         "device_ms": 0.02 * n**1.1 * noise[0], "host_cpu_ms": 0.1 * n * noise[1],
                         "wall_ms": 0.15 * n * noise[2]}).sample(frac=1, random_state=1)


def fake_binned(rng) -> pd.DataFrame:
    rows = []
    for variable, edges in (("pt", np.r_[0.0, np.geomspace(0.5, 50, 7)]), ("eta", np.linspace(-4, 4, 9))):
        for metric, lo_hi in (("dm_efficiency", (0.6, 0.98)), ("fake_rate", (0.0, 0.2)),
                              ("fit_accuracy", (0.5, 0.95)), ("track_fake_rate", (0.05, 0.4))):
            value = rng.uniform(*lo_hi, len(edges) - 1)
            err = rng.uniform(0.005, 0.05, len(edges) - 1)
            n = rng.integers(20, 400, len(edges) - 1)
            n[-1] = 3          # a sparse outer bin: drawn grey, off the line
            rows.append(pd.DataFrame({"metric": metric, "variable": variable, "lo_edge": edges[:-1],
                                      "hi_edge": edges[1:], "value": value, "ci_lo": value - err,
                                      "ci_hi": value + err, "n": n}))
    # Shuffled rows: the plot must sort bins itself.
    return pd.concat(rows, ignore_index=True).sample(frac=1, random_state=2).reset_index(drop=True)


def fake_posteriors(rng, n_hits=3, k=5) -> pd.DataFrame:
    rows = []
    for i in range(n_hits):
        classes = rng.choice(400, k, replace=False)
        probs = np.sort(rng.dirichlet(np.ones(k) * 0.5))[::-1] * 0.95
        true_class = classes[1] if i < n_hits - 1 else 999   # the last hit's true class is not in the top-k
        rows.append(pd.DataFrame({"event_id": 7, "hit_id": 100 + i, "true_class": true_class, "class_id": classes,
                                  "probability": probs}))
    return pd.concat(rows, ignore_index=True)


def fake_event(rng, event_id, n_particles=12, hits_per_particle=6, n_noise=10):
    from trackpipe.io.store import normalise_event

    pid = np.repeat(np.arange(1, n_particles + 1), hits_per_particle)
    phi = np.repeat(rng.uniform(-np.pi, np.pi, n_particles), hits_per_particle)
    r = np.tile(np.linspace(30, 170, hits_per_particle), n_particles)
    z = r * np.repeat(rng.uniform(-2, 2, n_particles), hits_per_particle)
    pid = np.concatenate([pid, np.zeros(n_noise, np.int64)])
    phi = np.concatenate([phi, rng.uniform(-np.pi, np.pi, n_noise)])
    r = np.concatenate([r, rng.uniform(30, 170, n_noise)])
    z = np.concatenate([z, rng.uniform(-500, 500, n_noise)])
    n = len(pid)
    hits = pd.DataFrame({"hit_id": np.arange(1, n + 1), "x": r * np.cos(phi), "y": r * np.sin(phi), "z": z,
                         "volume_id": 8, "layer_id": (np.arange(n) % hits_per_particle) * 2 + 2, "module_id": 1,
                         "particle_id": pid, "weight": 1.0})
    particles = pd.DataFrame({"particle_id": np.arange(1, n_particles + 1), "vx": 0.0, "vy": 0.0, "vz": 0.0,
                              "px": 1.0, "py": 0.0, "pz": 0.5, "q": 1, "nhits": hits_per_particle})
    # Predicted tracks: the truth, with noise hits as singletons (as the trackers write them).
    track = np.where(pid > 0, pid - 1, n_particles + np.arange(n))
    sub = pd.DataFrame({"event_id": event_id, "hit_id": hits.hit_id, "track_id": track})
    return normalise_event(hits, particles, event_id=event_id), sub


def write_fake_results(root, seed=0):
    """Write a fake results tree under `root`; return the metrics written, by (dataset, model)."""
    from trackpipe.io.store import write_store

    rng = np.random.default_rng(seed)
    written = {}
    for dataset in DATASETS:
        for model in RUN_MODELS:
            if (dataset, model) == NOT_RUN:
                continue
            ev, pr = root / "eval" / dataset / model, root / "predict" / dataset / model
            ev.mkdir(parents=True)
            pr.mkdir(parents=True)
            metrics = fake_metrics(rng, device=device_of(model))
            (ev / "metrics.json").write_text(json.dumps(metrics))
            written[(dataset, model)] = metrics
            per_event = fake_per_event(rng)
            per_event.to_parquet(ev / "per_event.parquet")
            fake_timing(rng, per_event).to_csv(pr / "timing.csv", index=False)
            if dataset in BINNED_DATASETS:
                fake_binned(rng).to_parquet(ev / "binned.parquet")
            if model == "enccla" and dataset == "trackml-10-50":
                fake_posteriors(rng).to_parquet(pr / "posteriors.parquet")
    events, subs = zip(*(fake_event(rng, eid) for eid in (3, 5)))
    write_store(root / "data" / DISPLAY[0] / "test", events)
    pd.concat(subs).to_csv(root / "predict" / DISPLAY[0] / DISPLAY[1] / "submission.csv", index=False)
    loc = root / "locality" / LOCALITY_DATASET
    loc.mkdir(parents=True)
    clustering = {alg: {region: {"reconstructible_ratio": float(rng.uniform(0.9, 1)),
                                 "attention_fraction": float(rng.uniform(1e-4, 1e-2)),
                                 "n_clusters": int(rng.integers(400, 1800)),
                                 "cluster_dm_efficiency": float(rng.uniform(0, 0.9)),
                                 "seconds_per_event": float(rng.uniform(0.01, 2))}
                        for region in ("endcap", "barrel")}
                  for alg in ("dbscan", "iterative_window", "density_peaks", "grid_window")}
    (loc / "clustering.json").write_text(json.dumps(clustering))
    (loc / "latency.json").write_text(json.dumps({"total": 80.0, "encoder_forward": 20.0,
                                                  "clustering_and_masks": 6.0, "track_formation": 47.0}))
    ev = root / "eval" / LOCALITY_DATASET / "contrastive"
    ev.mkdir(parents=True)
    fake_binned(rng).to_parquet(ev / "binned.parquet")
    bench = root / "bench"
    bench.mkdir()
    fake_scaling(rng).to_csv(bench / "scaling.csv", index=False)
    return written


def fake_scaling(rng, exponents=(("encreg-fa", 1.2), ("encreg", 2.0))) -> pd.DataFrame:
    rows = []
    n_hits = np.array([500, 1000, 2000, 5000, 10000, 30000, 60000])
    for model, k in exponents:
        ms = 1e-3 * n_hits**k * rng.lognormal(0, 0.03, len(n_hits))
        rows.append(pd.DataFrame({"model": model, "n_tracks": n_hits // 9, "n_hits": n_hits, "ms_median": ms,
                                  "ms_p90": ms * 1.2, "peak_mb": n_hits * 0.01}))
    return pd.concat(rows, ignore_index=True)
