"""`trackpipe locality` on the real TrackML directory; the tuning grid search against brute force."""

import json

import numpy as np
import pytest

from trackpipe.cli import main
from trackpipe.locality.events import pixel_hits
from trackpipe.locality.metrics import locality_metrics
from trackpipe.locality.pipeline import cluster_event
from trackpipe.locality.tune import grid_points, tune

KEYS = {"region", "reconstructible_ratio", "full_containment", "oracle_dm_efficiency", "attention_fraction",
        "n_clusters", "cluster_dm_efficiency", "seconds_per_event"}


def test_cli_json_per_region(trackml_dir, capsys):
    assert main(["locality", "--data", str(trackml_dir), "--algorithm", "grid_window", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"grid_window"}
    for region in ("barrel", "endcap", "all"):
        row = out["grid_window"][region]
        assert KEYS <= set(row) and row["region"] == region
        assert 0 < row["attention_fraction"] < 1
        # the real (sparse) event: the default overlapping windows lose no pT > 0.9 GeV track
        assert row["oracle_dm_efficiency"] == 1.0
        assert row["full_containment"] <= row["reconstructible_ratio"]


def test_cli_table_and_bad_arguments(trackml_dir, capsys):
    params = json.dumps({"clustering": {"dbscan": {"barrel": {"eps": 2.0}}}})
    assert main(["locality", "--data", str(trackml_dir), "--algorithm", "dbscan", "--params", params]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["algorithm", "region"] and len(lines) == 4
    assert "full" in lines[0] and "oracle" in lines[0]
    assert main(["locality", "--data", str(trackml_dir), "--algorithm", "kmeans"]) == 2
    assert "kmeans" in capsys.readouterr().err
    assert main(["locality", "--data", str(trackml_dir), "--params", '{"clustering": {"dbscan": {"moon": {}}}}',
                 "--algorithm", "dbscan"]) == 2


def test_tune_picks_the_best_feasible_pair(trackml_event):
    hits, particles = pixel_hits(trackml_event.hits), trackml_event.particles
    grid = {"barrel": {"width_u": [6.0, 12.0], "width_v": [100.0, 300.0]},
            "endcap": {"width_u": [6.0, 12.0], "width_v": [6.0]}}
    # brute force over all pairs
    scores = []
    for b in grid_points(grid["barrel"]):
        for e in grid_points(grid["endcap"]):
            m = locality_metrics(hits, particles, cluster_event(hits, "iterative_window", {"barrel": b, "endcap": e}))
            scores.append((m["all"]["reconstructible_ratio"], m["all"]["attention_fraction"], b, e))
    fractions = sorted(s[1] for s in scores)
    target = fractions[len(fractions) // 2]  # about half of the pairs are feasible
    res = tune([(hits, particles)], "iterative_window", grid=grid, target_fraction=target, objective="reconstructible")
    feasible = [s for s in scores if s[1] <= target]
    best_ratio = max(s[0] for s in feasible)
    assert res["feasible"]
    assert res["reconstructible_ratio"] == pytest.approx(best_ratio)
    assert res["attention_fraction"] <= target
    assert any(s[2] == res["params"]["barrel"] and s[3] == res["params"]["endcap"] and s[0] == best_ratio
               for s in feasible)
    # infeasible target: the smallest fraction is returned and flagged
    res = tune([(hits, particles)], "iterative_window", grid=grid, target_fraction=1e-9, objective="reconstructible")
    assert not res["feasible"] and res["attention_fraction"] == pytest.approx(fractions[0])


def test_tune_oracle_dm_at_budget_per_region(trackml_event):
    """Default objective: per region, the best oracle DM among the candidates within that region's budget."""
    hits, particles = pixel_hits(trackml_event.hits), trackml_event.particles
    grid = {"barrel": {"width_u": [2.0, 4.0, 8.0], "width_v": [60.0, 160.0], "overlap_u": [0.5], "overlap_v": [0.5]},
            "endcap": {"width_u": [2.0, 4.0], "width_v": [2.0, 4.0], "overlap_u": [0.5], "overlap_v": [0.5]}}
    brute = {r: [] for r in ("barrel", "endcap")}
    for region in brute:
        for c in grid_points(grid[region]):
            m = locality_metrics(hits, particles, cluster_event(hits, "grid_window", {region: c}), oracle=True)[region]
            brute[region].append((m["oracle_dm_efficiency"], m["attention_fraction"], c))
    target = float(np.median([f for _, f, _ in brute["barrel"]]))  # about half of the barrel candidates fit
    res = tune([(hits, particles)], "grid_window", grid=grid, target_fraction=target)
    assert res["objective"] == "oracle_dm"
    for region, rows in brute.items():
        feasible = [row for row in rows if row[1] <= target]
        if not feasible:
            assert not res["feasible"] and not res["regions"][region]["feasible"]
            continue
        best = max(dm for dm, _, _ in feasible)
        assert res["regions"][region]["oracle_dm_efficiency"] == pytest.approx(best)
        assert res["regions"][region]["attention_fraction"] <= target
        assert min((f, i) for i, (dm, f, _) in enumerate(feasible) if dm == best)[0] == pytest.approx(
            res["regions"][region]["attention_fraction"])
    # the narrowest barrel windows (2 mm wide, 60 mm long) cut tracks: the choice is not simply the smallest
    assert res["params"]["barrel"] != {"width_u": 2.0, "width_v": 60.0, "overlap_u": 0.5, "overlap_v": 0.5}
    with pytest.raises(Exception, match="objective"):
        tune([(hits, particles)], "grid_window", grid=grid, objective="score")


def test_real_pixels_need_a_second_hit_per_layer(trackml_event):
    """Overlapping modules give most real particles two hits on some layer: with the perfect embedding,
    one hit per layer splits such particles between half-tracks, the default limit of 2 does not."""
    hits, particles = pixel_hits(trackml_event.hits), trackml_event.particles
    key = hits[hits.particle_id > 0][["particle_id", "volume_id", "layer_id"]]
    assert key.duplicated().sum() > 100  # the event's double hits: the premise of this test
    result = cluster_event(hits, "grid_window")
    limit = {n: locality_metrics(hits, particles, result, {"tracking": {"max_hits_per_layer": n}}, oracle=True)
             for n in (0, 1, 2)}
    assert limit[2]["all"]["oracle_dm_efficiency"] == limit[0]["all"]["oracle_dm_efficiency"] == 1.0
    assert limit[1]["all"]["oracle_dm_efficiency"] < 0.97
