"""Locality metrics on a hand-built event, and clustering of the real TrackML event's pixel hits."""

import numpy as np
import pytest
from locality_helpers import result_of as _result, toy_event as _toy

from trackpipe.locality.clustering import ALGORITHMS
from trackpipe.locality.events import pixel_hits
from trackpipe.locality.metrics import locality_metrics
from trackpipe.locality.pipeline import cluster_event


def test_hand_built_event():
    hits, particles, hit_region = _toy()
    r = _result([[0, 1, 2, 4], [3, 5], [6, 7, 8, 9], [10, 11, 12]], hit_region)
    m = locality_metrics(hits, particles, r)
    assert m["barrel"]["n_tracks"] == 2 and m["endcap"]["n_tracks"] == 1  # C is below 0.9 GeV
    assert m["barrel"]["reconstructible_ratio"] == 0.5   # A 3/4 in one cluster, B at most 1/3
    assert m["endcap"]["reconstructible_ratio"] == 1.0
    assert m["all"]["reconstructible_ratio"] == pytest.approx(2 / 3)
    assert m["barrel"]["attention_fraction"] == pytest.approx((16 + 4 + 16) / 100)
    assert m["endcap"]["attention_fraction"] == pytest.approx(1.0)
    assert m["all"]["attention_fraction"] == pytest.approx((36 + 9) / 169)
    assert m["barrel"]["n_clusters"] == 3 and m["all"]["n_clusters"] == 4
    # DM: [0,1,2,4] matches A (3/4 of the cluster, 3/4 of A); [6,7,8,9] has no > 50 % majority; D matched
    assert m["barrel"]["cluster_dm_efficiency"] == 0.5
    assert m["endcap"]["cluster_dm_efficiency"] == 1.0


def test_exactly_half_is_reconstructible_but_not_a_dm_match():
    hits, particles, hit_region = _toy()
    r = _result([[0, 1, 4, 5], [2, 3, 6], [7], [8], [9], [10, 11, 12]], hit_region)
    m = locality_metrics(hits, particles, r)
    assert m["barrel"]["reconstructible_ratio"] == 1.0  # A 2/4 (>= 50 %), B 2/3
    # [0,1,4,5]: tie 2/2, no strict majority; [2,3,6]: A holds 2/3 of the cluster but only 2/4 of A
    assert m["barrel"]["cluster_dm_efficiency"] == 0.0
    assert m["barrel"]["n_clusters"] == 2 and m["barrel"]["n_single"] == 3


def test_a_duplicated_hit_counts_in_each_cluster():
    hits, particles, hit_region = _toy()
    r = _result([[0, 1, 2, 3, 4], [3, 5], [6, 7, 8, 9], [10, 11, 12]], hit_region)
    m = locality_metrics(hits, particles, r)
    assert m["barrel"]["attention_fraction"] == pytest.approx((25 + 4 + 16) / 100)
    assert m["barrel"]["cluster_dm_efficiency"] == 0.5


@pytest.fixture(scope="module")
def pixel_event(trackml_event):
    return pixel_hits(trackml_event.hits), trackml_event.particles


# DBSCAN's defaults are tuned for <mu> = 200 density (eps 0.5 mm): in this sub-sampled event (2.8k pixel
# hits) neighbouring hits of a track are further apart, so it gets sparse-event parameters here.
SPARSE = {"dbscan": {"barrel": {"eps": 3.0, "min_samples": 2, "v_scale": 0.05},
                     "endcap": {"eps": 3.0, "min_samples": 2, "v_scale": 1.0}}}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_real_event_clustering_is_in_sane_ranges(pixel_event, algorithm):
    hits, particles = pixel_event
    assert set(hits.volume_id.unique()) == {7, 8, 9}
    r = cluster_event(hits, algorithm, SPARSE.get(algorithm), event=1)
    assert set(np.unique(r.hit_index)) == set(range(len(hits)))
    m = locality_metrics(hits, particles, r)
    assert m["all"]["n_hits"] == m["barrel"]["n_hits"] + m["endcap"]["n_hits"] == len(hits)
    assert m["all"]["n_tracks"] > 40
    # the sub-sampled event is sparse: most pT > 0.9 GeV tracks stay inside one cluster, and clusters are
    # small compared with the event (dense attention would be 1.0)
    assert 0.85 <= m["all"]["reconstructible_ratio"] <= 1.0
    assert 0.0 < m["all"]["attention_fraction"] < 0.02
    assert m["all"]["n_clusters"] > 50
    assert 0.0 <= m["all"]["cluster_dm_efficiency"] <= 1.0
    assert r.seconds["total"] < 5.0
