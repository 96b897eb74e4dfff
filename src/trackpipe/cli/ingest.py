from __future__ import annotations

from ..io.ingest import FORMATS, ingest


def add_arguments(p) -> None:
    p.add_argument("src", help="TrackML directory or zip, ACTS CSV directory, REDVID CSV file, reduced-TrackML CSV "
                               "file (TrackFormers, 14 columns, with or without header), or HepMC3 ASCII file "
                               "(.gz too; its final-state charged particles are simulated through the TrackML-like "
                               "detector)")
    p.add_argument("--format", required=True, choices=FORMATS, help="input format")
    p.add_argument("--seed", type=int, default=0,
                   help="hepmc only: random seed of the detector simulation (hits, noise); same seed, same store")
    p.add_argument("--out", required=True, help="event store directory to create")
    p.add_argument("--skip-bad", action="store_true", help="leave out (and list) events that fail validation")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.add_argument("--max-events", type=int, default=None, help="ingest at most this many events")
    p.add_argument("--progress", action="store_true", default=None, help="force a progress bar")


def run(args) -> int:
    summary = ingest(args.format, args.src, args.out, skip_bad=args.skip_bad, overwrite=args.overwrite,
                     max_events=args.max_events, show_progress=args.progress, seed=args.seed)
    for s in summary["skipped"]:
        print(f"skipped event {s['event_id']}: {s['error']}")
    print(f"wrote {summary['events']} event(s) to {summary['out']}"
          + (f" ({len(summary['skipped'])} skipped)" if summary["skipped"] else ""))
    return 0
