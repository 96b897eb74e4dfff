"""The glue: collecting a results tree, making everything there is data for, recording every gap."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from report_fakes import BINNED_DATASETS, DATASETS, DISPLAY, LOCALITY_DATASET, NOT_RUN, RUN_MODELS, fake_binned

from trackpipe import report, tables
from trackpipe.errors import DataError


def test_collect_results(fake_results):
    root, metrics = fake_results
    found = report.collect_results(root)
    assert found["metrics"] == metrics
    assert found["datasets"][:5] == DATASETS and found["datasets"][5:] == [LOCALITY_DATASET]
    assert found["models"] == ["helix-dbscan", "enccla", "encreg", "contrastive"]
    assert set(found["binned"]) == {(d, m) for d in BINNED_DATASETS for m in RUN_MODELS if (d, m) != NOT_RUN} | \
        {(LOCALITY_DATASET, "contrastive")}
    assert set(found["stores"]) == {DISPLAY[0]}
    assert found["scaling"] == root / "bench" / "scaling.csv"
    assert set(found["clustering"][LOCALITY_DATASET]) == {"dbscan", "iterative_window", "density_peaks", "grid_window"}


def test_make_all_writes_everything_and_records_gaps(fake_results, tmp_path):
    root, metrics = fake_results
    models = RUN_MODELS + ["unet"]          # configured but never run
    written = report.make_all(root, tmp_path / "tables", tmp_path / "figures", datasets=DATASETS, models=models)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    expected_stems = ["tables/table1", "tables/table2", f"tables/locality_clustering_{LOCALITY_DATASET}",
                      f"tables/locality_latency_{LOCALITY_DATASET}"]
    expected = {f"{s}.{e}" for s in expected_stems for e in ("csv", "md", "tex")}
    fig_stems = ["fig6", "scaling", f"locality_efficiency_{LOCALITY_DATASET}", "fig7_trackml-10-50_enccla",
                 f"event_display_{DISPLAY[0]}_{DISPLAY[1]}"]
    fig_stems += [f"fig4_{d}" for d in BINNED_DATASETS] + [f"fig5_{d}" for d in DATASETS]
    fig_stems += [f"efficiency_gnn_tracking_{d}" for d in BINNED_DATASETS]   # DM efficiency, gnn_tracking fakes
    expected |= {f"figures/{s}.{e}" for s in fig_stems for e in ("png", "pdf")}
    expected.add("tables/missing.json")
    assert names == expected
    assert all(p.stat().st_size > 0 for p in written)

    gaps = json.loads((tmp_path / "tables" / "missing.json").read_text())["gaps"]
    not_run = {(g["dataset"], g["model"]) for g in gaps if g["item"] == "table1"}
    assert not_run == {NOT_RUN} | {(d, "unet") for d in DATASETS}
    fig4_gaps = {g["dataset"] for g in gaps if g["item"] == "fig4"}
    assert fig4_gaps == set(DATASETS) - set(BINNED_DATASETS)

    t1 = pd.read_csv(tmp_path / "tables" / "table1.csv", dtype=str, keep_default_na=False).set_index("dataset")
    assert list(t1.index) == DATASETS
    assert list(t1.columns) == ["metric", "helix-dbscan", "enccla", "encreg", "unet"]
    assert (t1["unet"] == tables.GAP).all()
    assert t1.loc[NOT_RUN[0], NOT_RUN[1]] == tables.GAP
    assert float(t1.loc["trackml-10-50", "enccla"]) == metrics[("trackml-10-50", "enccla")]["trackml_score"]


def test_make_all_on_empty_results_only_writes_gapped_tables(tmp_path):
    written = report.make_all(tmp_path / "nothing", tmp_path / "t", tmp_path / "f", datasets=["trackml-10-50"],
                              models=["encreg"])
    assert {p.name for p in written} == {"table1.csv", "table1.md", "table1.tex", "table2.csv", "table2.md",
                                         "table2.tex", "missing.json"}
    assert not (tmp_path / "f").exists()
    md = (tmp_path / "t" / "table1.md").read_text()
    assert f"| trackml-10-50 | trackml_score | {tables.GAP} |" in md
    items = {g["item"] for g in json.loads((tmp_path / "t" / "missing.json").read_text())["gaps"]}
    assert items == {"table1", "table2", "fig6", "fig4", "fig5", "scaling"}


def test_unknown_config_key_is_refused(tmp_path):
    from trackpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="fig4_metric"):
        report.make_all(tmp_path, tmp_path / "t", tmp_path / "f", config={"fig4_metric": ["x"]})


def test_malformed_inputs_name_the_file(tmp_path):
    bad = tmp_path / "eval" / "trackml-10-50" / "encreg"
    bad.mkdir(parents=True)
    (bad / "metrics.json").write_text("{not json")
    with pytest.raises(DataError, match="metrics.json"):
        report.collect_results(tmp_path)
    (bad / "metrics.json").write_text("{}")
    import numpy as np

    fake_binned(np.random.default_rng(0)).drop(columns="n").to_parquet(bad / "binned.parquet")
    results = report.collect_results(tmp_path)
    with pytest.raises(DataError, match=r"binned\.parquet.*'n'"):
        report.make_fig4(results, tmp_path / "f4", "trackml-10-50")


def test_timing_join(tmp_path):
    timing = pd.DataFrame({"event_id": [3, 1, 2], "n_hits": [30, 10, 20], "device_ms": [3.0, 1.0, 2.0],
                           "host_cpu_ms": [1.0, 1.0, 1.0], "wall_ms": [4.0, 2.0, 3.0]})
    per_event = pd.DataFrame({"event_id": [1, 2, 3], "n_particles": [11, 22, 33]})
    timing.to_csv(tmp_path / "timing.csv", index=False)
    per_event.to_parquet(tmp_path / "pe.parquet")
    joined = report.timing_with_tracks(tmp_path / "timing.csv", tmp_path / "pe.parquet")
    assert dict(zip(joined.event_id, joined.n_particles)) == {1: 11, 2: 22, 3: 33}
    assert dict(zip(joined.event_id, joined.device_ms)) == {1: 1.0, 2: 2.0, 3: 3.0}
    pd.concat([per_event, per_event.head(1)]).to_parquet(tmp_path / "pe.parquet")
    with pytest.raises(DataError, match="event 1"):
        report.timing_with_tracks(tmp_path / "timing.csv", tmp_path / "pe.parquet")


def test_event_display_picks_a_stored_event(fake_results, tmp_path):
    root, _ = fake_results
    results = report.collect_results(root)
    paths = report.make_event_display(results, tmp_path / "ev", *DISPLAY, event_id=5)
    assert [p.name for p in paths] == ["ev.png", "ev.pdf"] and all(p.stat().st_size > 0 for p in paths)
    with pytest.raises(DataError, match="event 99"):
        report.make_event_display(results, tmp_path / "ev", *DISPLAY, event_id=99)
    gaps = report.Gaps()
    assert report.make_event_display(results, tmp_path / "ev2", "trackml-10-50", "encreg", gaps=gaps) == []
    assert gaps.items == [{"item": "event_display", "dataset": "trackml-10-50", "model": "encreg",
                           "reason": "no submission.csv"}]


def test_make_all_writes_the_encdec_table_and_names_a_missing_protocol(tmp_path):
    root = tmp_path / "results"
    for dataset in ("redvid-helical-10-50", "trackml-10-50"):
        (root / "eval" / dataset / "encdec").mkdir(parents=True)
        (root / "eval" / dataset / "encdec" / "metrics.json").write_text(json.dumps({"fit_accuracy": 0.6,
                                                                                     "trackml_score": 0.5}))
    (root / "eval" / "trackml-10-50" / "encdec" / "encdec_protocol.json").write_text(json.dumps(
        {"next_hit_accuracy": 0.8, "seed_excluded_fit_accuracy": 0.3, "seed_excluded_trackml_score": 0.25,
         "truth_seeded_wall_ms_median": 12.0}))
    found = report.collect_results(root)
    assert set(found["encdec_protocol"]) == {("trackml-10-50", "encdec")}
    written = report.make_all(root, tmp_path / "t", tmp_path / "f", encdec_models=["encdec"])
    assert {"table_encdec.csv", "table_encdec.md", "table_encdec.tex"} <= {p.name for p in written}
    md = (tmp_path / "t" / "table_encdec.md").read_text()
    assert "| trackml-10-50 | encdec | trackml_score | 0.800 | 0.250 | 0.500 | 12.0 |" in md
    gaps = json.loads((tmp_path / "t" / "missing.json").read_text())["gaps"]
    assert {(g["dataset"], g["model"]) for g in gaps if g["item"] == "table_encdec"} == {
        ("redvid-helical-10-50", "encdec")}
    # Without EncDec models (and no protocol files) there is no such table.
    assert not any(p.name.startswith("table_encdec") for p in report.make_all(
        tmp_path / "none", tmp_path / "t2", tmp_path / "f2", datasets=["trackml-10-50"], models=["encreg"]))


def test_no_empty_figures_for_redvid_or_cpu_only_timing(tmp_path):
    """Fig. 4 of a dataset without momenta (REDVID: only the 'all' rows) and Fig. 5 of a tracker without a
    network (no GPU-side time) are gaps with a reason, not figures of empty panels; Fig. 4's caption states
    the selection and the number of bootstrapped events."""
    import numpy as np

    ev = tmp_path / "eval" / "redvid-linear-10-50" / "helix-dbscan"
    ev.mkdir(parents=True)
    (ev / "metrics.json").write_text(json.dumps({"truth": True, "n_events": 1, "fig4_selection": "tracks >= 4 hits"}))
    binned = fake_binned(np.random.default_rng(0))
    binned[binned.variable == "pt"].assign(variable="all").to_parquet(ev / "binned.parquet")
    pd.DataFrame({"event_id": [1], "n_particles": [5]}).to_parquet(ev / "per_event.parquet")
    pr = tmp_path / "predict" / "redvid-linear-10-50" / "helix-dbscan"
    pr.mkdir(parents=True)
    pd.DataFrame({"event_id": [1], "n_hits": [50], "device_ms": [np.nan], "host_cpu_ms": [3.0], "wall_ms": [4.0],
                  "device": ["cpu"]}).to_csv(pr / "timing.csv", index=False)
    results = report.collect_results(tmp_path)
    gaps = report.Gaps()
    assert report.make_fig4(results, tmp_path / "f4", "redvid-linear-10-50", gaps=gaps) == []
    assert report.make_fig5(results, tmp_path / "f5", "redvid-linear-10-50", gaps=gaps) == []
    reasons = {(g["item"], g.get("model")): g["reason"] for g in gaps.items}
    assert "no particle momenta" in reasons[("fig4", None)]
    assert "no GPU side" in reasons[("fig5", "helix-dbscan")]
    caption = report.fig4_caption(results, "redvid-linear-10-50", ["helix-dbscan"], ["fit_accuracy"])
    assert caption == ("FitAccuracy / fake rate: tracks >= 4 hits; bands: 68 % bootstrap over 1 test events "
                       "(one event: no interval)")
