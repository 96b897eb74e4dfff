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
