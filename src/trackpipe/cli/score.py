"""`trackpipe score`: headline metrics of a submission against an event store or a TrackML directory."""

from __future__ import annotations

import json
import math

from ..evaluate import evaluate_submission
from ..metrics.efficiency import DEFAULT_CUTS

# Rows of the human-readable table, in order; the JSON output holds every key of metrics.json.
HEADLINE = ("trackml_score", "trackml_score_pixel", "fit_accuracy", "dm_efficiency", "perfect_efficiency",
            "lhc_efficiency", "fake_rate", "duplicate_rate", "n_events", "n_selected_particles", "n_selected_clusters",
            "hit_set", "selection")


def add_arguments(p) -> None:
    p.add_argument("--truth", required=True, help="event store directory, or a TrackML directory / zip")
    p.add_argument("--submission", required=True, help="submission CSV (event_id, hit_id, track_id)")
    p.add_argument("--json", action="store_true", help="print the metrics.json keys as JSON")
    p.add_argument("--per-event", action="store_true", help="also print one row per event")
    p.add_argument("--pt-min", type=float, default=DEFAULT_CUTS["pt_min"],
                   help="particle pT threshold for efficiencies, GeV (default %(default)s; ignored for REDVID)")
    p.add_argument("--max-eta", type=float, default=DEFAULT_CUTS["max_eta"],
                   help="maximum particle |eta| for efficiencies (default %(default)s; ignored for REDVID)")
    p.add_argument("--min-cluster-size", type=int, default=DEFAULT_CUTS["min_cluster_size"],
                   help="hits a track needs to be a valid cluster (default %(default)s)")
    p.add_argument("--pixel-only", choices=("auto", "yes", "no"), default="auto",
                   help="evaluate on the pixel hits only (auto: when the submission holds exactly the pixel hits)")


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def run(args) -> int:
    pixel_only = {"auto": None, "yes": True, "no": False}[args.pixel_only]
    result = evaluate_submission(args.truth, args.submission, pt_min=args.pt_min, max_eta=args.max_eta,
                                 min_cluster_size=args.min_cluster_size, pixel_only=pixel_only)
    metrics = result.metrics
    if args.json:
        out = dict(metrics)
        if args.per_event:
            rows = result.per_event.astype(object).where(result.per_event.notna(), None)
            out["per_event"] = rows.to_dict(orient="records")
        print(json.dumps(out, indent=2, sort_keys=True, default=_json_number))
        return 0
    width = max(len(k) for k in HEADLINE)
    for key in HEADLINE:
        if key in metrics:
            print(f"{key:<{width}}  {_fmt(metrics[key])}")
    if args.per_event:
        print()
        print(result.per_event.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    return 0


def _json_number(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")
