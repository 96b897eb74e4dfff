from __future__ import annotations

from pathlib import Path

from ..io.store import EventStore
from ..progress import progress


def add_arguments(p) -> None:
    p.add_argument("store", help="event store directory")
    p.add_argument("--format", required=True, choices=("trackml", "redvid"), help="output format")
    p.add_argument("--out", required=True, help="TrackML: output directory; REDVID: output CSV file")
    p.add_argument("--gzip", action="store_true", help="TrackML: write .csv.gz")


def run(args) -> int:
    store = EventStore(args.store)
    if args.format == "trackml":
        from ..io.trackml import write_trackml_event

        for ev in progress(store.iter_events(), total=len(store), desc="export", unit="event"):
            write_trackml_event(args.out, ev, compress=args.gzip)
    else:
        from ..io.redvid import write_redvid_csv

        # A REDVID row holds its hit's track and the track's parameters: nothing to write without truth.
        store.require_truth("REDVID export")
        write_redvid_csv(Path(args.out), store.iter_events())
    note = ""
    if not store.has_truth:
        note = (f" ({'hits and cells' if store.has_cells else 'hits'} only: the store has no truth, so no truth or "
                "particles file was written)")
    print(f"wrote {len(store)} event(s) to {args.out}{note}")
    return 0
