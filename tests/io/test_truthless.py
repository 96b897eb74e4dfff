"""Events without truth (TrackML Kaggle test set: hits and cells only), from ingest to the tables.

The Kaggle-test-like event is the real event of ../shared/data/trackml with its truth and particles
files left out (the Kaggle test files have exactly the train files' hits and cells columns).
"""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest

from trackpipe import tables
from trackpipe.cli import main
from trackpipe.errors import DataError
from trackpipe.evaluate import evaluate, evaluate_for_workflow, evaluate_submission, evaluate_without_truth
from trackpipe.io.ingest import ingest
from trackpipe.io.store import Event, EventStore, StoreWriter, empty_particles, merge_stores
from trackpipe.io.submission import read_submission, write_submission
from trackpipe.io.trackml import TrackMLSource
from trackpipe.schema import HITS, TRUTH_COLUMNS

NOTICE = "no truth files"


def kaggle_like(src, dst, event_ids=(1,)):
    """Hits and cells of the real event (as events `event_ids`), without truth and particles files."""
    dst.mkdir(parents=True, exist_ok=True)
    for eid in event_ids:
        for part in ("hits", "cells"):
            shutil.copy(src / f"event000000001-{part}.csv.gz", dst / f"event{eid:09d}-{part}.csv.gz")
    return dst


@pytest.fixture(scope="module")
def kaggle_dir(trackml_dir, tmp_path_factory):
    return kaggle_like(trackml_dir, tmp_path_factory.mktemp("kaggle") / "test")


@pytest.fixture(scope="module")
def store(kaggle_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("truthless") / "store"
    ingest("trackml", kaggle_dir, out)
    return out


def test_ingest_logs_one_notice_and_marks_the_store(kaggle_dir, trackml_dir, tmp_path, caplog):
    src = kaggle_like(trackml_dir, tmp_path / "two", event_ids=(1, 2))
    with caplog.at_level(logging.INFO, logger="trackpipe"):
        summary = ingest("trackml", src, tmp_path / "store")
    notices = [r for r in caplog.records if NOTICE in r.getMessage()]
    assert len(notices) == 1 and "store marked truth-less" in notices[0].getMessage()
    assert summary["truth"] is False and summary["events"] == 2
    st = EventStore(tmp_path / "store")
    assert st.manifest["truth"] is False and st.has_truth is False and st.info()["truth"] is False
    ev = st.read_event(2)
    # Every required hits column is kept, the truth columns are absent, particles are empty.
    assert set(HITS.required) <= set(ev.hits.columns) and not set(TRUTH_COLUMNS) & set(ev.hits.columns)
    assert len(ev.particles) == 0 and "particle_id" in ev.particles.columns
    original = pd.read_csv(kaggle_dir / "event000000001-hits.csv.gz")
    assert ev.hits.hit_id.tolist() == sorted(original.hit_id)
    assert np.array_equal(ev.hits.x.to_numpy(), original.sort_values("hit_id").x.to_numpy(np.float32))
    assert len(ev.cells) == len(pd.read_csv(kaggle_dir / "event000000001-cells.csv.gz")) == 18564


def test_store_with_truth_says_so(trackml_dir, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="trackpipe"):
        ingest("trackml", trackml_dir, tmp_path / "s")
    assert not [r for r in caplog.records if NOTICE in r.getMessage()]
    st = EventStore(tmp_path / "s")
    assert st.manifest["truth"] is True and st.has_truth
    # Stores written before the key existed have truth.
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    del manifest["truth"]
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    assert EventStore(tmp_path / "s").has_truth


@pytest.mark.parametrize("skip_bad", [False, True])
def test_mixed_input_is_an_error_naming_the_event(trackml_dir, tmp_path, skip_bad):
    src = kaggle_like(trackml_dir, tmp_path / "mixed", event_ids=(7,))
    for part in ("hits", "cells", "truth", "particles"):
        shutil.copy(trackml_dir / f"event000000001-{part}.csv.gz", src)
    with pytest.raises(DataError, match="event 7 has neither truth nor particles file but event 1") as e:
        ingest("trackml", src, tmp_path / "store", skip_bad=skip_bad)
    assert e.value.event == 7 and "event000000007-truth" in e.value.file
    assert not (tmp_path / "store").exists()


def test_one_missing_truth_part_is_still_a_missing_file(trackml_dir, tmp_path):
    """Particles without truth is a broken event with truth, not a truth-less one."""
    for part in ("hits", "cells", "particles"):
        shutil.copy(trackml_dir / f"event000000001-{part}.csv.gz", tmp_path)
    assert TrackMLSource(tmp_path).has_truth
    with pytest.raises(DataError, match="missing truth file"):
        ingest("trackml", tmp_path, tmp_path / "store")


def test_store_never_mixes_events_with_and_without_truth(trackml_event, tmp_path):
    bare = Event(2, trackml_event.hits.drop(columns=list(TRUTH_COLUMNS)), empty_particles(), trackml_event.cells)
    with pytest.raises(DataError, match="has no truth columns .* earlier events do") as e:
        with StoreWriter(tmp_path / "a") as w:
            w.add_event(trackml_event)
            w.add_event(bare)
    assert e.value.event == 2 and not (tmp_path / "a").exists()
    half = Event(3, trackml_event.hits.drop(columns=["weight"]), trackml_event.particles)
    with pytest.raises(DataError, match="but not \\['weight'\\]") as e:
        with StoreWriter(tmp_path / "b") as w:
            w.add_event(half)
    assert e.value.column == "weight"
    with pytest.raises(DataError, match="particle\\(s\\) but the hits have no truth columns"):
        with StoreWriter(tmp_path / "c") as w:
            w.add_event(Event(4, bare.hits, trackml_event.particles))


def test_merge_keeps_the_flag_and_refuses_mixing(store, trackml_dir, tmp_path):
    other = kaggle_like(trackml_dir, tmp_path / "k5", event_ids=(5,))
    ingest("trackml", other, tmp_path / "s5")
    merged = merge_stores([store, tmp_path / "s5"], tmp_path / "merged")
    m = EventStore(merged)
    assert m.has_truth is False and m.event_ids.tolist() == [1, 5]
    ingest("trackml", trackml_dir, tmp_path / "truth")  # event 1 with truth
    ingest("trackml", kaggle_like(trackml_dir, tmp_path / "k9", event_ids=(9,)), tmp_path / "s9")
    with pytest.raises(DataError, match="cannot merge a store without truth with one that has truth") as e:
        merge_stores([tmp_path / "truth", tmp_path / "s9"], tmp_path / "bad")
    assert e.value.file == str(tmp_path / "s9")


def test_reading_truth_columns_names_the_missing_truth(store):
    st = EventStore(store)
    with pytest.raises(DataError, match="no column\\(s\\) \\['particle_id'\\] \\(the store has no truth\\)"):
        st.read_event(1, columns=["hit_id", "particle_id"])
    with pytest.raises(DataError, match="training needs truth"):
        st.require_truth("training")


def test_training_on_it_names_the_missing_truth(store, tmp_path):
    from trackpipe.train.loop import train

    with pytest.raises(DataError, match="the store has no truth") as e:
        train("enccla", store, tmp_path / "m", val=store, epochs=1)
    assert str(store) in e.value.file


def test_info_shows_it(store, capsys):
    assert main(["info", str(store)]) == 0
    assert "truth      no (truth-less store" in capsys.readouterr().out
    assert main(["info", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["truth"] is False


@pytest.fixture(scope="module")
def predicted(store, tmp_path_factory):
    """`trackpipe predict --model helix-dbscan` on the truth-less store, through the command line."""
    out = tmp_path_factory.mktemp("pred")
    assert main(["predict", "--model", "helix-dbscan", "--data", str(store), "--out", str(out / "submission.csv"),
                 "--timing", str(out / "timing.csv"), "--params", json.dumps({"n_curvatures": 9})]) == 0
    return out


def test_cli_predict_helix_dbscan_covers_every_hit(store, predicted):
    sub = read_submission(predicted / "submission.csv")
    hits = EventStore(store).hits(columns=["event_id", "hit_id"])
    both = hits.merge(sub, on=["event_id", "hit_id"], how="outer", indicator=True)
    assert (both._merge == "both").all() and len(sub) == len(hits) == 5527
    assert sub.track_id.nunique() > 100  # real tracks, not one label
    timing = pd.read_csv(predicted / "timing.csv")
    assert timing.event_id.tolist() == [1] and timing.n_hits.tolist() == [5527]
    # helix-dbscan has no network: its clustering is CPU side, it has no device (GPU side) time.
    assert timing.device_ms.isna().all() and (timing.host_cpu_ms > 0).all()


def test_cli_predict_params_errors(store, tmp_path, capsys):
    args = ["predict", "--model", "helix-dbscan", "--data", str(store), "--out", str(tmp_path / "s.csv")]
    assert main(args + ["--params", '{"epsilon": 1}']) == 2
    assert "unknown helix-dbscan parameter(s) ['epsilon']" in capsys.readouterr().err
    assert main(args + ["--params", "{not json"]) == 2
    assert not (tmp_path / "s.csv").exists()


def test_cli_score_refuses_naming_the_store(store, predicted, capsys):
    assert main(["score", "--truth", str(store), "--submission", str(predicted / "submission.csv")]) == 2
    err = capsys.readouterr().err
    assert f"file {store}" in err and "has no truth" in err


def test_scoring_functions_refuse(store, kaggle_dir, predicted, tmp_path):
    for truth in (store, kaggle_dir):
        with pytest.raises(DataError, match="scoring needs truth") as e:
            evaluate_submission(truth, predicted / "submission.csv")
        assert e.value.file == str(truth)
    with pytest.raises(DataError, match="scoring needs truth"):
        evaluate(store, predicted / "submission.csv", tmp_path / "eval", timing_path=predicted / "timing.csv")
    assert not (tmp_path / "eval").exists()


def test_export_writes_hits_and_cells_only(store, kaggle_dir, tmp_path, capsys):
    out = tmp_path / "csv"
    assert main(["export", str(store), "--format", "trackml", "--out", str(out), "--gzip"]) == 0
    assert "no truth or particles file was written" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["event000000001-cells.csv.gz", "event000000001-hits.csv.gz"]
    for part in ("hits", "cells"):
        again, original = (pd.read_csv(d / f"event000000001-{part}.csv.gz") for d in (out, kaggle_dir))
        cols = list(original.columns)
        assert list(again.columns) == cols
        pd.testing.assert_frame_equal(again.sort_values(cols).reset_index(drop=True),
                                      original.sort_values(cols).reset_index(drop=True))
    assert main(["export", str(store), "--format", "redvid", "--out", str(tmp_path / "r.csv")]) == 2
    assert "REDVID export needs truth" in capsys.readouterr().err


def test_workflow_evaluate_marks_no_truth_and_tables_say_so(store, predicted, tmp_path):
    out = tmp_path / "eval" / "kaggle" / "helix-dbscan"
    m = evaluate_for_workflow(store, predicted / "submission.csv", out, timing_path=predicted / "timing.csv",
                              bootstrap=10, timing_warmup=0, pt_min=0.9)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(m)) and saved["truth"] is False
    assert not {"trackml_score", "fit_accuracy", "dm_efficiency", "fake_rate"} & set(saved)
    sub = read_submission(predicted / "submission.csv")
    timing = pd.read_csv(predicted / "timing.csv")
    assert (saved["n_hits"], saved["n_tracks"]) == (5527, sub.track_id.nunique())
    assert saved["wall_ms_median"] == pytest.approx(timing.wall_ms.iloc[0])
    per_event = pd.read_parquet(out / "per_event.parquet")
    assert per_event.columns.tolist() == ["event_id", "n_hits", "n_tracks", "device_ms", "host_cpu_ms", "wall_ms"]
    binned = pd.read_parquet(out / "binned.parquet")
    assert len(binned) == 0 and binned.columns.tolist() == ["metric", "variable", "lo_edge", "hi_edge", "value",
                                                          "ci_lo", "ci_hi", "n"]
    results = {("kaggle", "helix-dbscan"): saved, ("trackml-10-50", "helix-dbscan"): {"truth": True,
                                                                                    "trackml_score": 0.5}}
    t1 = tables.table1(results)
    assert t1.rows == [["trackml-10-50", "trackml_score", "0.500"], ["kaggle", "trackml_score", tables.NO_TRUTH]]
    assert t1.data.set_index("dataset").loc["kaggle", "helix-dbscan"] == tables.NO_TRUTH
    assert tables.NO_TRUTH_NOTE in t1.notes
    t2 = tables.table2(results)
    wall = next(r for r in t2.rows if r[:2] == ["kaggle", "wall ms"])
    assert wall[2].startswith(tables._fmt_ms(saved["wall_ms_median"]))


def test_evaluate_without_truth_checks_its_input(store, predicted, trackml_dir, tmp_path):
    sub = read_submission(predicted / "submission.csv")
    sub.loc[0, "hit_id"] = 10**9
    write_submission(tmp_path / "bad.csv", sub)
    with pytest.raises(DataError, match="1 submitted hit\\(s\\) are not in the store") as e:
        evaluate_without_truth(store, tmp_path / "bad.csv", tmp_path / "e")
    assert e.value.column == "hit_id" and e.value.event == 1
    ingest("trackml", trackml_dir, tmp_path / "truth")
    with pytest.raises(DataError, match="the store has truth"):
        evaluate_without_truth(tmp_path / "truth", predicted / "submission.csv", tmp_path / "e")


def test_report_skips_truthless_figures(store, predicted, tmp_path):
    from trackpipe.report import Gaps, collect_results, make_fig4, make_fig5, make_fig6, make_table1

    root = tmp_path / "results"
    (root / "predict" / "kaggle").mkdir(parents=True)
    shutil.copytree(predicted, root / "predict" / "kaggle" / "helix-dbscan")
    shutil.copytree(store, root / "data" / "kaggle" / "test")
    evaluate_for_workflow(root / "data" / "kaggle" / "test", predicted / "submission.csv",
                          root / "eval" / "kaggle" / "helix-dbscan", timing_path=predicted / "timing.csv",
                          timing_warmup=0)
    results, gaps = collect_results(root), Gaps()
    assert make_fig4(results, tmp_path / "fig4", "kaggle", gaps=gaps) == []
    assert make_fig5(results, tmp_path / "fig5", "kaggle", gaps=gaps) == []
    assert {(g["item"], g.get("model")) for g in gaps.items if g["reason"].startswith("no truth")} == \
        {("fig4", "helix-dbscan"), ("fig5", "helix-dbscan")}
    make_table1(results, tmp_path, gaps=gaps)
    assert "| kaggle | trackml_score | no truth |" in (tmp_path / "table1.md").read_text()
    # Fig. 6 draws the times of the truth-less dataset and no score for it.
    assert (tmp_path / "fig6.png") in make_fig6(results, tmp_path / "fig6")
