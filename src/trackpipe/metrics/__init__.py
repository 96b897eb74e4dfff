"""Track-reconstruction metrics: the single, tested source of every number trackpipe reports.

Pure numpy/pandas (no torch), vectorised with sorts and segment reductions. Modules:

* `score`: the TrackML score (exact library algorithm), its pixel-restricted variant, FitAccuracy;
* `tracks`: the shared majority-particle analysis per reconstructed track;
* `efficiency`: gnn_tracking-convention efficiencies, fake and duplicate rates, match tables;
* `binning`: rates binned in pT, eta, phi, vz with bootstrap confidence intervals over events;
* `classification`: per-hit accuracy of class-based models;
* `timing`: per-event inference-time statistics.
"""

from .binning import DEFAULT_BINS, binned_efficiency, binned_rates, bootstrap_ratio
from .classification import hit_classification_accuracy
from .efficiency import (
    DEFAULT_CUTS,
    double_majority_efficiency,
    duplicate_rate,
    fake_rate,
    lhc_efficiency,
    match_tables,
    perfect_efficiency,
    tracking_metrics,
    tracking_metrics_per_event,
)
from .score import (
    fit_accuracy,
    fit_accuracy_per_event,
    pixel_restricted_score,
    pixel_restricted_score_per_event,
    trackml_score,
    trackml_score_per_event,
)
from .timing import timing_summary
from .tracks import track_table

__all__ = [
    "DEFAULT_BINS", "DEFAULT_CUTS", "binned_efficiency", "binned_rates", "bootstrap_ratio",
    "double_majority_efficiency", "duplicate_rate", "fake_rate", "fit_accuracy", "fit_accuracy_per_event",
    "hit_classification_accuracy", "lhc_efficiency", "match_tables", "perfect_efficiency", "pixel_restricted_score",
    "pixel_restricted_score_per_event", "timing_summary", "track_table", "trackml_score", "trackml_score_per_event",
    "tracking_metrics", "tracking_metrics_per_event",
]
