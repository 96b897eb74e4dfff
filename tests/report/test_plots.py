"""Figure functions: files written, byte-identical on repeat, and the drawn data equal the input."""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from report_fakes import fake_binned, fake_event, fake_metrics, fake_per_event, fake_posteriors, fake_scaling, \
    fake_timing

from trackpipe.plots import complexity, efficiency, event_display, posterior, scaling, timing
from trackpipe.plots.style import output_paths


def _binned():
    rng = np.random.default_rng(0)
    return {"enccla": fake_binned(rng), "encreg": fake_binned(rng)}


def _fig5_data():
    rng = np.random.default_rng(1)
    out = {}
    for model in ("encreg", "encreg-fa"):
        pe = fake_per_event(rng)
        out[model] = fake_timing(rng, pe).merge(pe[["event_id", "n_particles"]], on="event_id")
    return out


def _complexity_data():
    rng = np.random.default_rng(2)
    return {(d, m): fake_metrics(rng) for d in ("redvid-linear-10-50", "trackml-10-50", "trackml-200-500")
            for m in ("enccla", "encreg") if (d, m) != ("trackml-200-500", "enccla")}


def _event():
    event, sub = fake_event(np.random.default_rng(4), 1)
    return event.hits, sub


# One entry per figure function: (name, call(out) -> Figure).
FIGURES = {
    "fig4": lambda out: efficiency.plot_binned(_binned(), out, title="trackml-10-50"),
    "fig5": lambda out: timing.plot_time_vs_tracks(_fig5_data(), out),
    "fig6": lambda out: complexity.plot_complexity(_complexity_data(), out),
    "fig7": lambda out: posterior.plot_posteriors(fake_posteriors(np.random.default_rng(5)), out),
    "event_display": lambda out: event_display.plot_event_display(*_event(), out),
    "scaling": lambda out: scaling.plot_scaling(fake_scaling(np.random.default_rng(6)), out),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_written_and_deterministic(name, tmp_path):
    first = output_paths(tmp_path / "a" / name)
    second = output_paths(tmp_path / "b" / name)
    FIGURES[name](tmp_path / "a" / name)
    FIGURES[name](tmp_path / "b" / f"{name}.png")      # a suffix in the target is accepted
    for p, q in zip(first, second):
        assert p.stat().st_size > 1000
        assert p.read_bytes() == q.read_bytes(), f"{p.name} differs between two runs"
    assert first[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert first[1].read_bytes()[:5] == b"%PDF-"
    # No run-dependent metadata (a timestamp would make two runs a second apart differ).
    assert b"/CreationDate" not in first[1].read_bytes()
    assert b"Software" not in first[0].read_bytes() and b"tIME" not in first[0].read_bytes()
    assert not list((tmp_path / "a").glob(".*"))           # no temporary files left behind


def test_fig4_lines_and_bands_are_the_binned_values(tmp_path):
    binned = _binned()
    fig = efficiency.plot_binned(binned, tmp_path / "f4", min_entries=10, caption="tracks >= 4 hits")
    axes = np.array(fig.axes).reshape(2, 2)
    for i, metric in enumerate(("fit_accuracy", "track_fake_rate")):
        for j, variable in enumerate(("pt", "eta")):
            ax = axes[i, j]
            lines = {line.get_label(): line for line in ax.get_lines()}
            assert set(lines) == set(binned)
            bands = [c for c in ax.collections if c.get_label().endswith("68% CI")]
            sparse = [c for c in ax.collections if c.get_label().startswith("fewer than 10")]
            assert len(bands) == len(sparse) == len(binned)
            for model, band, grey in zip(sorted(binned), bands, sparse):   # drawn in model order
                ref = binned[model]
                ref = ref[(ref.metric == metric) & (ref.variable == variable)].sort_values("lo_edge")
                enough = ref.n.to_numpy() >= 10
                centres = 0.5 * (ref.lo_edge + ref.hi_edge)
                if variable == "pt":
                    centres = np.where(ref.lo_edge > 0, np.sqrt(ref.lo_edge * ref.hi_edge), centres)
                np.testing.assert_array_equal(lines[model].get_ydata(), np.where(enough, ref.value, np.nan))
                np.testing.assert_allclose(lines[model].get_xdata(), centres)
                ys = band.get_paths()[0].vertices[:, 1]
                np.testing.assert_allclose(ys.min(), ref.ci_lo[enough].min())
                np.testing.assert_allclose(ys.max(), ref.ci_hi[enough].max())
                # The sparse bin is off the line and outside the band, in grey at its value.
                np.testing.assert_allclose(grey.get_offsets()[:, 1], ref.value[~enough])
                assert mcolors.to_hex(grey.get_edgecolor()[0]) == "#b0b0b0"
    assert axes[0, 0].get_xscale() == "log" and axes[0, 1].get_xscale() == "linear"
    # Log axis: only major ticks are labelled, plainly ("1", "10"), and none overlaps another.
    fig.canvas.draw()
    minor = [t.get_text() for t in axes[0, 0].xaxis.get_minorticklabels() if t.get_text()]
    assert minor == []
    major = [t.get_text() for t in axes[0, 0].xaxis.get_majorticklabels() if t.get_visible() and t.get_text()]
    assert "1" in major and "10" in major
    # The legend is the figure's, above the panels, not inside any of them.
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    assert "tracks >= 4 hits" in fig.get_suptitle()


def test_fig4_bad_table_names_the_column(tmp_path):
    from trackpipe.errors import DataError

    with pytest.raises(DataError, match="ci_hi"):
        efficiency.plot_binned({"m": fake_binned(np.random.default_rng(0)).drop(columns="ci_hi")}, tmp_path / "x")


@pytest.mark.parametrize("k", [0.8, 1.37, 2.0])
def test_power_law_fit_recovers_exponent(k):
    rng = np.random.default_rng(7)
    x = np.geomspace(100, 1e5, 25)
    k_exact, a_exact = scaling.fit_power_law(x, 3.0 * x**k)
    assert k_exact == pytest.approx(k, abs=1e-10) and a_exact == pytest.approx(3.0, rel=1e-8)
    k_noisy, _ = scaling.fit_power_law(x, 3.0 * x**k * rng.lognormal(0, 0.05, x.size))
    assert k_noisy == pytest.approx(k, abs=0.03)
    assert np.isnan(scaling.fit_power_law([5, 5, 5], [1, 2, 3])[0])


def test_scaling_legend_states_exponents(tmp_path):
    fig = scaling.plot_scaling(fake_scaling(np.random.default_rng(6)), tmp_path / "s")
    assert fig.axes[0].get_legend() is None        # the legend is outside the data
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    exponents = sorted(float(lab.split("N^{")[1].split("}")[0]) for lab in labels)
    assert exponents == pytest.approx([1.2, 2.0], abs=0.05)


def test_binned_median_matches_loop():
    rng = np.random.default_rng(8)
    x, y = rng.integers(10, 5000, 200).astype(float), rng.uniform(0, 10, 200)
    cx, cy = timing.binned_median(x, y, n_bins=6)
    edges = np.linspace(np.log10(x.min()), np.log10(x.max()), 7)
    ref_c, ref_m = [], []
    for b in range(6):
        last = b == 5
        sel = (np.log10(x) >= edges[b]) & ((np.log10(x) <= edges[b + 1]) if last else (np.log10(x) < edges[b + 1]))
        if sel.any():
            ref_c.append(10 ** ((edges[b] + edges[b + 1]) / 2))
            ref_m.append(np.median(y[sel]))
    np.testing.assert_allclose(cx, ref_c)
    np.testing.assert_allclose(cy, ref_m)


def test_fig5_points_are_the_events(tmp_path):
    data = _fig5_data()
    fig = timing.plot_time_vs_tracks(data, tmp_path / "f5", time_column="wall_ms")
    ax = fig.axes[0]
    points = [c for c in ax.collections if c.get_label().endswith(" events")]
    assert len(points) == len(data)
    for model, coll in zip(sorted(data), points):
        pts = coll.get_offsets()
        np.testing.assert_allclose(np.asarray(pts), data[model][["n_particles", "wall_ms"]].to_numpy(float))
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_ylabel() == "wall-clock time per event [ms]"


def test_fig6_series_break_at_missing_results(tmp_path):
    data = _complexity_data()
    data[("trackml-10-50", "helix-dbscan")] = fake_metrics(np.random.default_rng(9), device="none")
    fig = complexity.plot_complexity(data, tmp_path / "f6")
    score_ax, cpu_ax, gpu_ax, range_ax = fig.axes[:4]
    levels = ("redvid-linear-10-50", "trackml-10-50", "trackml-200-500")
    enccla = next(line for line in score_ax.get_lines() if line.get_label() == "enccla")
    y = enccla.get_ydata()
    assert y[0] == data[("redvid-linear-10-50", "enccla")]["fit_accuracy"]
    assert y[1] == data[("trackml-10-50", "enccla")]["trackml_score"]
    assert np.isnan(y[2])
    encreg = next(line for line in gpu_ax.get_lines() if line.get_label() == "encreg")
    assert list(encreg.get_ydata()) == [data[(d, "encreg")]["device_ms_median"] for d in levels]
    cpu = next(line for line in cpu_ax.get_lines() if line.get_label() == "encreg")
    assert list(cpu.get_ydata()) == [data[(d, "encreg")]["host_cpu_ms_median"] for d in levels]
    # The CPU-only tracker: a CPU side, no GPU side, and a total equal to its CPU side.
    assert any(line.get_label() == "helix-dbscan" for line in cpu_ax.get_lines())
    assert not any(line.get_label() == "helix-dbscan" for line in gpu_ax.get_lines())
    lo, hi = complexity.range_series(data, levels, "encreg")
    m = data[("trackml-10-50", "encreg")]
    cpu_ms, gpu_ms = m["host_cpu_ms_median"], m["device_ms_median"]
    assert (lo[1], hi[1]) == pytest.approx((max(cpu_ms, gpu_ms), cpu_ms + gpu_ms))
    lo, hi = complexity.range_series(data, levels, "helix-dbscan")
    assert lo[1] == hi[1] == data[("trackml-10-50", "helix-dbscan")]["host_cpu_ms_median"] and np.isnan(lo[0])
    assert range_ax.get_yscale() == "log"
    assert [t.get_text() for t in score_ax.get_xticklabels()] == list(levels)
    # One colour per model, and the legend outside every panel.
    colours = {line.get_label(): line.get_color() for line in cpu_ax.get_lines()
               if not line.get_label().startswith("_")}
    assert len(set(colours.values())) == len(colours) == 3
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1


def test_fig7_bars_sorted_and_true_class_highlighted(tmp_path):
    post = fake_posteriors(np.random.default_rng(5))
    fig = posterior.plot_posteriors(post, tmp_path / "f7", max_hits=3)
    for ax, (hit_id, rows) in zip(fig.axes, post.groupby("hit_id")):
        heights = [p.get_height() for p in ax.patches]
        np.testing.assert_allclose(heights, np.sort(rows.probability.to_numpy())[::-1])
        true_class = rows.true_class.iloc[0]
        labels = [t.get_text() for t in ax.get_xticklabels()]
        for label, patch in zip(labels, ax.patches):
            want = posterior.TRUE_COLOUR if int(label) == true_class else posterior.OTHER_COLOUR
            assert mcolors.to_hex(patch.get_facecolor()) == want
        shown = any("not in top-k" in t.get_text() for t in ax.texts)
        assert shown == (true_class not in rows["class_id"].to_numpy())


def test_event_display_colours():
    hits, sub = _event()
    # Make one track a singleton and drop one hit from the submission: both must be grey.
    sub = sub.copy()
    sub.loc[sub.index[0], "track_id"] = 10_000
    sub = sub.iloc[:-1]
    index, n_tracks = event_display.track_colour_index(hits, sub, max_colours=5)
    merged = hits[["hit_id"]].merge(sub, on="hit_id", how="left")
    sizes = merged.groupby("track_id").hit_id.transform("size")
    grey_expected = merged.track_id.isna() | (sizes < 2)
    np.testing.assert_array_equal(index < 0, grey_expected.to_numpy())
    assert set(index[index >= 0]) <= set(range(5))
    assert n_tracks == merged[~grey_expected].track_id.nunique()
    # All hits of one track share one colour.
    keep = ~grey_expected.to_numpy()
    per_track = pd.Series(index[keep]).groupby(merged.track_id.to_numpy()[keep]).nunique()
    assert (per_track == 1).all()


def test_identical_bytes_across_processes(tmp_path):
    """Two separate interpreter runs (different hash seeds, object ids) write the same bytes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    code = ("import sys, numpy as np; sys.path.insert(0, sys.argv[2]);"
            "from report_fakes import fake_scaling; from trackpipe.plots.scaling import plot_scaling;"
            "plot_scaling(fake_scaling(np.random.default_rng(6)), sys.argv[1])")
    src = str(here.parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "random"}
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / run / "s"), str(here)], check=True, env=env)
    for ext in ("png", "pdf"):
        assert (tmp_path / "a" / f"s.{ext}").read_bytes() == (tmp_path / "b" / f"s.{ext}").read_bytes()


def test_dense_event_display_shows_a_phi_slice_with_few_coloured_tracks(tmp_path):
    """An HL-LHC-sized event is not drawn as a solid disc: a φ slice of about `max_hits` hits, with only
    the `max_colours` candidates with most hits there in colour (one colour each) over grey hits."""
    event, sub = fake_event(np.random.default_rng(4), 1, n_particles=3000, hits_per_particle=8, n_noise=2000)
    fig = event_display.plot_event_display(event.hits, sub, tmp_path / "ed", max_colours=12, max_hits=2000)
    xy = fig.axes[0]
    grey, coloured = xy.collections[:2]
    n_drawn = len(grey.get_offsets()) + len(coloured.get_offsets())
    inside, half = event_display.phi_slice(event.hits, 2000)
    assert n_drawn == inside.sum() and 1500 < n_drawn < 2600 and half < np.pi
    phi = np.arctan2(coloured.get_offsets()[:, 1], coloured.get_offsets()[:, 0])
    assert (np.abs(phi) < half).all()
    colours = {tuple(c) for c in np.round(coloured.get_facecolors(), 6)}
    assert len(colours) == 12                                  # 12 tracks, 12 distinct colours
    assert f"|φ| < {half:.3f}" in fig.get_suptitle()


def test_fig6_score_interval_is_the_bootstrap_of_the_per_event_scores(tmp_path):
    from trackpipe.metrics.binning import bootstrap_ratio

    data = _complexity_data()
    rng = np.random.default_rng(12)
    per_event = {pair: pd.DataFrame({"event_id": np.arange(20), "trackml_score": rng.uniform(0.3, 0.9, 20),
                                     "fit_accuracy": rng.uniform(0.3, 0.9, 20)}) for pair in data}
    levels = ("redvid-linear-10-50", "trackml-10-50", "trackml-200-500")
    lo, hi = complexity.score_interval(per_event, data, levels, "encreg")
    scores = per_event[("trackml-10-50", "encreg")].trackml_score.to_numpy()
    _, ref_lo, ref_hi = bootstrap_ratio(scores[:, None], np.ones((20, 1)), n_resamples=1000, seed=0)
    assert (lo[1], hi[1]) == (ref_lo[0], ref_hi[0]) and lo[1] < scores.mean() < hi[1]
    one = {k: v.head(1) for k, v in per_event.items()}
    assert np.isnan(complexity.score_interval(one, data, levels, "encreg")[0]).all()   # one event: no interval
    fig = complexity.plot_complexity(data, tmp_path / "f6", per_event=per_event)
    bars = [c for c in fig.axes[0].containers if c.get_label() == "_encreg 68% CI"]
    assert len(bars) == 1 and len(bars[0].lines[2][0].get_segments()) == 3      # one bar per level
