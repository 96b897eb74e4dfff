"""Tables from fake metrics: exact values, visible gaps, paper order, well-formed Markdown and LaTeX."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from report_fakes import DATASETS, NOT_RUN, device_of, fake_metrics

from trackpipe import tables


@pytest.fixture()
def metrics():
    rng = np.random.default_rng(3)
    out = {}
    # Inserted in scrambled order: the table must impose the paper's order itself.
    for d in reversed(DATASETS + ["zz-extra"]):
        for m in ("encreg", "helix-dbscan", "enccla", "my-model"):
            if (d, m) != NOT_RUN:
                out[(d, m)] = fake_metrics(rng, device=device_of(m))
    return out


def md_cells(line: str) -> list[str]:
    assert line.startswith("|") and line.endswith("|")
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def md_table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def check_latex(text: str, n_columns: int, n_rows: int) -> None:
    assert text.count(r"\begin{table}") == text.count(r"\end{table}") == 1
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") == 1
    unescaped = re.sub(r"\\[{}]", "", text)
    assert unescaped.count("{") == unescaped.count("}")
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", text).group(1)
    assert len(spec) == n_columns
    body = text.split(r"\begin{tabular}")[1].split(r"\end{tabular}")[0]
    rows = [line for line in body.splitlines() if line.rstrip().endswith(r"\\")]
    assert len(rows) == n_rows + 1   # header + data rows
    for row in rows:
        assert len(re.findall(r"(?<!\\)&", row)) == n_columns - 1, row
    assert "_" not in re.sub(r"\\_", "", body)   # every underscore escaped


def test_table1_values_order_and_metric_choice(metrics, tmp_path):
    t = tables.table1(metrics)
    models = ["helix-dbscan", "enccla", "encreg", "my-model"]
    assert t.header == ["dataset", "metric", *models]
    assert [r[0] for r in t.rows] == DATASETS + ["zz-extra"]
    paths = tables.write_table(t, tmp_path)
    assert [p.name for p in paths] == ["table1.csv", "table1.md", "table1.tex"]
    csv = pd.read_csv(paths[0], dtype=str, keep_default_na=False)
    md = paths[1].read_text()
    for _, row in csv.iterrows():
        key = "fit_accuracy" if row.dataset.startswith("redvid") else "trackml_score"
        assert row.metric == key
        for m in models:
            if (row.dataset, m) == NOT_RUN:
                continue
            expected = metrics[(row.dataset, m)][key]
            assert float(row[m]) == expected          # the CSV round-trips the exact value
            assert f"{expected:.3f}" in md
    lines = md_table_lines(md)
    assert all(len(md_cells(line)) == len(t.header) for line in lines)
    assert len(lines) == 2 + len(DATASETS) + 1
    check_latex(paths[2].read_text(), len(t.header), len(DATASETS) + 1)


def test_missing_model_is_a_visible_gap(metrics, tmp_path):
    t = tables.table1(metrics, models=["helix-dbscan", "enccla", "unet"])
    paths = tables.write_table(t, tmp_path)
    csv = pd.read_csv(paths[0], dtype=str, keep_default_na=False).set_index("dataset")
    assert (csv["unet"] == tables.GAP).all()                 # never run anywhere
    assert csv.loc[NOT_RUN[0], NOT_RUN[1]] == tables.GAP     # this one pair not run
    assert csv.loc["trackml-10-50", "helix-dbscan"] != tables.GAP
    md = paths[1].read_text()
    row = next(md_cells(line) for line in md_table_lines(md) if line.startswith(f"| {NOT_RUN[0]} "))
    assert row[2] == tables.GAP and row[4] == tables.GAP and row[3] != tables.GAP
    assert tables.NOT_RUN_NOTE in md
    tex = paths[2].read_text()
    assert "not run" in tex and " -- " in tex


def test_missing_key_is_na_not_a_number(metrics):
    broken = dict(metrics)
    broken[("trackml-10-50", "enccla")] = {k: v for k, v in metrics[("trackml-10-50", "enccla")].items()
                                          if k != "trackml_score"}
    broken[("trackml-10-50", "encreg")] = {**metrics[("trackml-10-50", "encreg")], "trackml_score": float("nan")}
    t = tables.table1(broken)
    row = next(r for r in t.rows if r[0] == "trackml-10-50")
    assert row[t.header.index("enccla")] == tables.NOT_AVAILABLE
    assert row[t.header.index("encreg")] == tables.NOT_AVAILABLE
    assert tables.NOT_AVAILABLE_NOTE in t.notes


def test_table2_median_p90_and_device_marks(metrics, tmp_path):
    t = tables.table2(metrics)
    paths = tables.write_table(t, tmp_path)
    csv = pd.read_csv(paths[0], dtype=str, keep_default_na=False)
    assert len(csv) == (len(DATASETS) + 1) * (3 * 2 + 2)
    for (d, m), met in metrics.items():
        for prefix, _ in tables.TIMING_QUANTITIES:
            for stat in ("median", "p90"):
                cell = csv[(csv.dataset == d) & (csv.quantity == prefix) & (csv.statistic == stat)][m].item()
                if m == "helix-dbscan" and prefix == "device_ms":
                    assert cell == tables.CPU_ONLY      # no network: no GPU side
                else:
                    assert float(cell) == met[f"{prefix}_{stat}"]
        # Fig. 6 (d)'s range: max(CPU, GPU) to CPU + GPU; a CPU-only tracker's total is its CPU side.
        rng_rows = csv[(csv.dataset == d) & (csv.quantity == "total_range_ms")].set_index("statistic")[m]
        cpu, gpu = met["host_cpu_ms_median"], met["device_ms_median"]
        expected = (cpu, cpu) if gpu is None else (max(cpu, gpu), cpu + gpu)
        assert (float(rng_rows["range_lo"]), float(rng_rows["range_hi"])) == pytest.approx(expected)
    gpu_rows = [r for r in t.rows if r[1] == dict(tables.TIMING_QUANTITIES)["device_ms"]]
    i_cpu, i_gpu, i_none = t.header.index("enccla"), t.header.index("encreg"), t.header.index("helix-dbscan")
    for r in gpu_rows:
        assert tables.CPU_DEVICE_MARK in r[i_cpu] and tables.CPU_DEVICE_MARK not in r[i_gpu]
        assert r[i_none] in (tables.CPU_ONLY, tables.GAP)
    cpu_rows = [r for r in t.rows if r[1] == dict(tables.TIMING_QUANTITIES)["host_cpu_ms"]]
    assert all(tables.CPU_DEVICE_MARK not in r[i_none] for r in cpu_rows)
    assert tables.CPU_ONLY_NOTE in t.notes and tables.CPU_DEVICE_NOTE in t.notes
    cell = next(r for r in t.rows if r[0] == "trackml-10-50" and r[1] == "wall ms")[i_gpu]
    met = metrics[("trackml-10-50", "encreg")]
    assert cell == f"{tables._fmt_ms(met['wall_ms_median'])} ({tables._fmt_ms(met['wall_ms_p90'])})"
    rng_cell = next(r for r in t.rows if r[0] == "trackml-10-50" and r[1] == "total ms (range)")
    lo, hi = tables.time_range(met)
    assert rng_cell[i_gpu] == f"{tables._fmt_ms(lo)}–{tables._fmt_ms(hi)}"
    assert rng_cell[i_cpu].endswith(tables.CPU_DEVICE_MARK)
    check_latex(paths[2].read_text(), len(t.header), len(t.rows))
    assert all(len(md_cells(line)) == len(t.header) for line in md_table_lines(paths[1].read_text()))


def test_locality_tables(tmp_path):
    clustering = {"dbscan": {"barrel": {"reconstructible_ratio": 0.987, "attention_fraction": 0.000285,
                                        "full_containment": 0.44, "oracle_dm_efficiency": 0.81,
                                        "n_clusters": 499, "cluster_dm_efficiency": 0.14, "seconds_per_event": 0.3},
                             "endcap": {"reconstructible_ratio": 0.985, "attention_fraction": 0.00052,
                                        "n_clusters": 756, "cluster_dm_efficiency": 0.832}},
                  "grid_window": {"endcap": {"reconstructible_ratio": 0.989, "attention_fraction": 0.001099,
                                             "n_clusters": 1330, "cluster_dm_efficiency": 0.577,
                                             "seconds_per_event": 0.1}}}
    t = tables.locality_clustering_table(clustering, "hllhc-pixel")
    assert [r[:2] for r in t.rows] == [["barrel", "dbscan"], ["endcap", "dbscan"], ["endcap", "grid_window"]]
    # The slides' columns (seed 001) plus the two ceilings; # tracks absent from this entry shows as n/a.
    assert t.header[2:] == ["recon. ratio", "full containment", "oracle DM", "track DM eff.", "# clusters",
                            "# tracks", "attn. matrix reduction", "s / event"]
    assert t.rows[0][2:] == ["0.987", "0.440", "0.810", "0.140", "499", tables.NOT_AVAILABLE, "0.000285", "0.3"]
    assert t.rows[1][3:5] == [tables.NOT_AVAILABLE] * 2  # older clustering.json without the ceiling
    assert t.rows[1][-1] == tables.NOT_AVAILABLE     # no timing for this entry: shown as n/a
    paths = tables.write_table(t, tmp_path)
    check_latex(paths[2].read_text(), len(t.header), 3)
    lat = tables.locality_latency_table({"total": 73.0, "encoder_forward": 20.0, "clustering_and_masks": 6.0,
                                         "track_formation": 47.0}, "hllhc-pixel")
    # Seed 004's rows: clustering & masks, encoder, track formation, total.
    assert [r[0] for r in lat.rows] == [tables.LATENCY_LABELS[c] for c in tables.LATENCY_ORDER]
    assert lat.data.component.tolist() == list(tables.LATENCY_ORDER)
    assert lat.data.ms.tolist() == [6.0, 20.0, 47.0, 73.0]


def test_order_names_and_escape():
    assert tables.order_names(["b", "encreg", "a", "helix-dbscan"], tables.MODEL_ORDER) == \
        ["helix-dbscan", "encreg", "a", "b"]
    assert tables.latex_escape("a_b & 5% #1 –") == r"a\_b \& 5\% \#1 --"


def test_encdec_table_puts_the_protocol_beside_the_full_event_score(tmp_path):
    protocol = {
        ("redvid-helical-10-50", "encdec"): {"next_hit_accuracy": 0.826, "seed_excluded_fit_accuracy": 0.71,
                                             "seed_excluded_trackml_score": 0.69, "truth_seeded_wall_ms_median": 41.5},
        ("trackml-10-50", "encdec"): {"next_hit_accuracy": 0.5, "seed_excluded_fit_accuracy": 0.2,
                                      "seed_excluded_trackml_score": 0.3, "truth_seeded_wall_ms_median": None},
    }
    metrics = {("redvid-helical-10-50", "encdec"): {"fit_accuracy": 0.62, "trackml_score": 0.6},
               ("trackml-10-50", "encdec"): {"fit_accuracy": 0.4, "trackml_score": 0.47},
               ("redvid-linear-10-50", "encdec"): {"fit_accuracy": 0.77, "trackml_score": 0.7},
               ("trackml-10-50", "enccla"): {"fit_accuracy": 0.9, "trackml_score": 0.9}}
    t = tables.encdec_protocol_table(protocol, metrics, models=["encdec"])
    assert t.header[:3] == ["dataset", "model", "metric"]
    by_dataset = {r[0]: r for r in t.rows}
    # Paper order; the REDVID rows take FitAccuracy, TrackML rows the TrackML score, from both sources.
    assert [r[0] for r in t.rows] == ["redvid-linear-10-50", "redvid-helical-10-50", "trackml-10-50"]
    assert by_dataset["redvid-helical-10-50"][2:] == ["fit_accuracy", "0.826", "0.710", "0.620", "41.5"]
    assert by_dataset["trackml-10-50"][2:] == ["trackml_score", "0.500", "0.300", "0.470", tables.NOT_AVAILABLE]
    # No protocol file for linear: its protocol cells are gaps, its full-event score is still shown.
    assert by_dataset["redvid-linear-10-50"][3:] == [tables.GAP, tables.GAP, "0.770", tables.GAP]
    assert "enccla" not in {r[1] for r in t.rows}
    paths = tables.write_table(t, tmp_path)
    check_latex(paths[2].read_text(), n_columns=len(t.header), n_rows=3)
    csv = pd.read_csv(paths[0], dtype=str, keep_default_na=False).set_index("dataset")
    assert float(csv.loc["redvid-helical-10-50", "truth seeds, seeds excl."]) == 0.71


def test_dataset_without_truth_shows_no_truth_for_scores_and_its_times(metrics, tmp_path):
    """metrics.json with "truth": false (Kaggle-like test events): 'no truth' for the score, not n/a or a
    gap, in the display and the CSV; Table 2 keeps the times."""
    truthless = {"truth": False, "n_events": 3, "wall_ms_median": 120.0, "wall_ms_p90": 150.0,
                 "device_ms_median": 100.0, "device_ms_p90": 110.0, "host_cpu_ms_median": 5.0,
                 "host_cpu_ms_p90": 6.0, "device": "cpu"}
    results = {**metrics, ("kaggle-test", "helix-dbscan"): truthless, ("kaggle-test", "enccla"): truthless}
    t1 = tables.table1(results)
    row = next(r for r in t1.rows if r[0] == "kaggle-test")
    columns = dict(zip(t1.header, row))
    assert columns["helix-dbscan"] == columns["enccla"] == tables.NO_TRUTH
    assert columns["encreg"] == tables.GAP  # not run there: still a gap, not "no truth"
    assert tables.NO_TRUTH_NOTE in t1.notes
    paths = tables.write_table(t1, tmp_path)
    csv = pd.read_csv(paths[0], dtype=str, keep_default_na=False).set_index("dataset")
    assert csv.loc["kaggle-test", "helix-dbscan"] == tables.NO_TRUTH
    t2 = tables.table2(results)
    times = {r[1]: dict(zip(t2.header, r)) for r in t2.rows if r[0] == "kaggle-test"}
    assert times["wall ms"]["helix-dbscan"] == "120 (150)"
    assert times["GPU side ms"]["enccla"] == f"100{tables.CPU_DEVICE_MARK} (110)"
    assert tables.NO_TRUTH_NOTE not in t2.notes
    # The EncDec table: the full-event score of a truth-less dataset says so, its time column is timing.
    t3 = tables.encdec_protocol_table({}, {("kaggle-test", "encdec"): truthless}, models=["encdec"])
    assert t3.rows == [["kaggle-test", "encdec", "trackml_score", tables.GAP, tables.GAP, tables.NO_TRUTH,
                        tables.GAP]]


def test_headline_metric_comes_from_the_evaluation_not_the_name():
    """A file-sourced REDVID set may have any name: the metric follows what evaluation wrote."""
    results = {("zenodo-linear", "enccla"): {"truth": True, "headline": "fit_accuracy", "fit_accuracy": 0.91,
                                              "trackml_score": 0.5},
               ("redvid-renamed-real", "enccla"): {"truth": True, "headline": "trackml_score",
                                                   "fit_accuracy": 0.2, "trackml_score": 0.7}}
    t = tables.table1(results)
    rows = {r[0]: r[1:] for r in t.rows}
    assert rows["zenodo-linear"] == ["fit_accuracy", "0.910"]
    assert rows["redvid-renamed-real"] == ["trackml_score", "0.700"]
    # Without a headline in any metrics (older results), the name decides as before.
    assert tables.score_key("redvid-x") == "fit_accuracy" and tables.score_key("acts-x") == "trackml_score"


def test_fallback_and_same_computation_are_marked():
    """EncReg-FA on a CPU falls back to sdpa fp32: EncReg's computation; both tables say so."""
    base = {"truth": True, "trackml_score": 0.276, "device": "cpu", "device_ms_median": 5.0, "device_ms_p90": 6.0,
            "host_cpu_ms_median": 2.0, "host_cpu_ms_p90": 3.0, "wall_ms_median": 9.0, "wall_ms_p90": 9.5}
    results = {
        ("trackml-10-50", "encreg"): {**base, "attention": "sdpa fp32"},
        ("trackml-10-50", "encreg-fa"): {**base, "attention": "sdpa fp32 (fallback from flash: it needs CUDA "
                                                              "with fp16/bf16, ran on cpu)"},
        # On a GPU the flash path ran: a result of its own, no mark.
        ("trackml-200-500", "encreg"): {**base, "attention": "sdpa bf16", "device": "cuda"},
        ("trackml-200-500", "encreg-fa"): {**base, "attention": "flash bf16", "device": "cuda"},
    }
    t1 = tables.table1(results)
    cells = {r[0]: dict(zip(t1.header, r)) for r in t1.rows}
    assert cells["trackml-10-50"]["encreg-fa"] == f"0.276{tables.FALLBACK_MARK}{tables.SAME_MARK}"
    assert cells["trackml-10-50"]["encreg"] == "0.276"
    assert cells["trackml-200-500"]["encreg-fa"] == "0.276"
    assert tables.FALLBACK_NOTE in t1.notes
    same = [n for n in t1.notes if n.startswith(tables.SAME_MARK)]
    assert same == [f"{tables.SAME_MARK}: encreg-fa ran the same computation as encreg (sdpa fp32 attention) on "
                    "trackml-10-50: not an independent result."]
    t2 = tables.table2(results)
    gpu = {r[0]: dict(zip(t2.header, r)) for r in t2.rows if r[1] == "GPU side ms"}
    assert gpu["trackml-10-50"]["encreg-fa"].startswith(f"5.00{tables.CPU_DEVICE_MARK}{tables.FALLBACK_MARK}"
                                                        f"{tables.SAME_MARK}")
    assert gpu["trackml-200-500"]["encreg-fa"] == "5.00 (6.00)"
    # The CSV keeps exact numbers, no marks.
    assert t1.data.set_index("dataset").loc["trackml-10-50", "encreg-fa"] == 0.276
