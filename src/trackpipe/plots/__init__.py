"""Figures of the study: one function per figure, data in, file out (PNG and PDF, byte-deterministic).

Each module takes plain data (DataFrames, dicts) already computed by the metrics stage, draws one
figure, saves it through :func:`trackpipe.plots.style.save_figure` and returns the matplotlib Figure
so callers and tests can inspect what was drawn. Nothing here computes a metric.
"""
