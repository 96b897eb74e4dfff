"""Latency breakdown and the locality study files on a tiny store."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from contrastive_helpers import TINY_CONTRASTIVE, tiny_events
from trackpipe.io.store import write_store
from trackpipe.locality.latency import COMPONENTS, latency_breakdown, locality_study, region_efficiency


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("latency") / "store"
    write_store(path, tiny_events(3, seed=7))
    return path


def test_latency_components_add_up_and_tracks_cover_every_hit(store):
    section = copy.deepcopy(TINY_CONTRASTIVE)
    median, per_event, sub, warm = latency_breakdown(store, model_section=section, events=2, warmup=1, threads=1)
    assert list(median) == list(COMPONENTS) and all(v > 0 for v in median.values())
    # every length bucket of the timed events was run once untimed before timing; CPU: blocked path, no compile
    from trackpipe.io.store import EventStore
    from trackpipe.locality.flex import bucket_length
    from trackpipe.models.registry import resolve_config
    from trackpipe.train.locality import blocks_for_event, locality_settings

    settings = locality_settings(resolve_config("contrastive", section))
    st = EventStore(store)
    expected = set()
    for eid in per_event.event_id:
        b = blocks_for_event(eid, st.read_event(eid).hits, settings)
        expected.add(bucket_length(b.n_tokens, b.block_size))
    assert {r["bucket_tokens"] for r in warm["buckets"]} == expected
    assert warm["compiled_graphs"] == 0 and warm["warmup_ms"] > 0
    parts = per_event[list(COMPONENTS[:3])].sum(axis=1)
    np.testing.assert_allclose(per_event["total"], parts)
    assert len(per_event) == 2 and not sub.duplicated(["event_id", "hit_id"]).any()
    assert len(sub) == per_event.n_hits.sum()


def test_locality_study_writes_the_files_the_report_reads(store, tmp_path):
    out = tmp_path / "locality" / "tiny"
    locality_study(store, out, {"algorithms": ["dbscan"], "model": copy.deepcopy(TINY_CONTRASTIVE),
                                "latency_events": 1, "threads": 1})
    clustering = json.loads((out / "clustering.json").read_text())
    for region in ("barrel", "endcap", "all"):
        row = clustering["dbscan"][region]
        assert set(row) >= {"region", "reconstructible_ratio", "full_containment", "oracle_dm_efficiency",
                            "attention_fraction", "n_clusters", "cluster_dm_efficiency", "seconds_per_event"}
        assert row["region"] == region
        assert 0 <= row["full_containment"] <= row["reconstructible_ratio"] <= 1
    warm = json.loads((out / "latency_warmup.json").read_text())
    assert warm["buckets"] and warm["compiled_graphs"] == 0
    latency = json.loads((out / "latency.json").read_text())
    assert set(latency) == set(COMPONENTS)
    assert not (out / "efficiency.json").exists()  # no trained model: no tracker efficiency is claimed


def test_region_efficiency_counts_matched_particles_per_region(store):
    from trackpipe.io.store import EventStore

    st = EventStore(store)
    hits, particles = st.hits(), st.particles()
    truth_sub = hits[["event_id", "hit_id"]].assign(track_id=hits.particle_id.to_numpy())
    eff = region_efficiency(hits, particles, truth_sub, pt_bins=[0.9, 2.0, 10.0], eta_bins=[-4, 0, 4])
    assert eff["regions"]["all"]["dm_efficiency"] == 1.0
    n = eff["regions"]["barrel"]["n_particles"] + eff["regions"]["endcap"]["n_particles"]
    assert n == eff["regions"]["all"]["n_particles"] > 0 and eff["regions"]["endcap"]["n_particles"] > 0
    # every hit its own track: nothing is matched (tracks need >= 3 hits)
    singles = hits[["event_id", "hit_id"]].assign(track_id=np.arange(len(hits)))
    eff0 = region_efficiency(hits, particles, singles, pt_bins=[0.9, 2.0, 10.0])
    assert eff0["regions"]["all"]["dm_efficiency"] == 0.0
    assert sum(b["n_particles"] for b in eff0["pt"]) == eff0["regions"]["all"]["n_particles"]


def test_locality_study_tunes_on_the_validation_split(tmp_path):
    """With ``tune`` the study chooses each algorithm's parameters on the sibling ``val`` store (oracle DM at
    the attention budget), writes them to tuned.json and reports the test split with them."""
    from trackpipe.locality.study import compare_clustering

    data = tmp_path / "data"
    write_store(data / "val", tiny_events(1, seed=11))
    write_store(data / "test", tiny_events(2, seed=12))
    # min_samples 5 leaves the 4-hit tracks as noise (single-hit clusters: the smallest attention fraction,
    # nothing found); min_samples 2 finds them
    grid = {"barrel": {"eps": [0.5], "min_samples": [5, 2], "v_scale": [0.05]},
            "endcap": {"eps": [0.5, 3.0], "min_samples": [2], "v_scale": [1.0]}}
    out = tmp_path / "study"
    locality_study(data / "test", out, {"algorithms": ["dbscan"], "model": copy.deepcopy(TINY_CONTRASTIVE),
                                        "latency_events": 1, "threads": 1,
                                        "tune": {"grids": {"dbscan": grid}, "target_fraction": 1.0}})
    tuned = json.loads((out / "tuned.json").read_text())["dbscan"]
    assert tuned["objective"] == "oracle_dm" and tuned["feasible"]
    assert len(tuned["table"]["barrel"]) == 2 and set(tuned["params"]) == {"barrel", "endcap"}
    rows = {r["params"]["min_samples"]: r for r in tuned["table"]["barrel"]}
    assert rows[5]["attention_fraction"] < rows[2]["attention_fraction"]
    assert rows[5]["oracle_dm_efficiency"] < rows[2]["oracle_dm_efficiency"] == 1.0
    assert tuned["params"]["barrel"]["min_samples"] == 2
    expected = compare_clustering(data / "test", ["dbscan"], {"clustering": {"dbscan": tuned["params"]}})
    clustering = json.loads((out / "clustering.json").read_text())
    for region in ("barrel", "endcap", "all"):
        assert clustering["dbscan"][region]["oracle_dm_efficiency"] == pytest.approx(
            expected["dbscan"][region]["oracle_dm_efficiency"])
    with pytest.raises(Exception, match="tune keys"):
        locality_study(data / "test", tmp_path / "bad", {"algorithms": ["dbscan"], "tune": {"splitt": "val"},
                                                         "model": copy.deepcopy(TINY_CONTRASTIVE)})
