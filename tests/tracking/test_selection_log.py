"""The selection summary in the training log: the best threshold of each (helix test, layer limit) variant."""

from trackpipe.tracking.families import _best_per_variant


def test_best_per_variant_takes_each_variants_maximum():
    rows = [
        {"helix_tolerance": None, "max_hits_per_layer": 1, "threshold": 0.0, "dm_efficiency": 0.40, "trackml_score": 0.2},
        {"helix_tolerance": None, "max_hits_per_layer": 1, "threshold": 0.7, "dm_efficiency": 0.45, "trackml_score": 0.1},
        {"helix_tolerance": None, "max_hits_per_layer": 2, "threshold": 0.9, "dm_efficiency": 0.30, "trackml_score": 0.1},
        {"helix_tolerance": [0.02, 1.6], "max_hits_per_layer": 1, "threshold": 0.5, "dm_efficiency": 0.70,
         "trackml_score": 0.36},
        {"helix_tolerance": [0.02, 1.6], "max_hits_per_layer": 1, "threshold": 0.9, "dm_efficiency": 0.60,
         "trackml_score": 0.30},
    ]
    lines = _best_per_variant(rows).splitlines()
    assert lines == [
        "  helix test off, max hits per layer 1: DM efficiency 0.450 at threshold 0.7 (TrackML score 0.100)",
        "  helix test off, max hits per layer 2: DM efficiency 0.300 at threshold 0.9 (TrackML score 0.100)",
        "  helix test on , max hits per layer 1: DM efficiency 0.700 at threshold 0.5 (TrackML score 0.360)",
    ]


def test_best_per_variant_without_selected_particles_goes_by_the_trackml_score():
    # events without momenta (e.g. REDVID) have no DM efficiency: the selection decides on the TrackML score
    rows = [{"helix_tolerance": None, "max_hits_per_layer": 1, "threshold": t, "dm_efficiency": None,
             "trackml_score": score} for t, score in ((0.5, 0.2), (0.9, 0.4), (0.95, 0.3))]
    assert _best_per_variant(rows) == \
        "  helix test off, max hits per layer 1: DM efficiency n/a at threshold 0.9 (TrackML score 0.400)"
