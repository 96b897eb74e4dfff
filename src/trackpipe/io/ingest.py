"""Convert external event files into an event store, one event at a time."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import DataError
from ..progress import progress
from .store import StoreWriter

log = logging.getLogger(__name__)
FORMATS = ("trackml", "acts", "redvid", "trackml-reduced", "hepmc")


def open_source(fmt: str, src, *, trackml: dict | None = None, seed: int = 0):
    """The reader of `src` in format `fmt`: an object with `event_ids` and `read_event(event_id)`.

    `trackml` (the TrackML-like simulation section; default the simulator's) and `seed` are used by
    "hepmc", whose generator particles are simulated into hits; the other formats ignore both.
    """
    if fmt == "trackml":
        from .trackml import TrackMLSource
        return TrackMLSource(src)
    if fmt == "acts":
        from .acts import ACTSSource
        return ACTSSource(src)
    if fmt == "redvid":
        from .redvid import REDVIDSource
        return REDVIDSource(src)
    if fmt == "trackml-reduced":
        from .trackml_reduced import TrackMLReducedSource
        return TrackMLReducedSource(src)
    if fmt == "hepmc":
        from .hepmc import HepMCSource
        return HepMCSource(src, trackml=trackml, seed=seed)
    raise DataError(f"unknown input format {fmt!r}; expected one of {list(FORMATS)}")


def ingest(fmt: str, src, out, *, skip_bad: bool = False, overwrite: bool = False, max_events: int | None = None,
           show_progress: bool | None = None, trackml: dict | None = None, seed: int = 0) -> dict:
    """Read every event of `src` and write the store `out`.

    A bad event stops the ingest with its error and nothing is written, unless `skip_bad`: then the
    event is left out, logged, and listed in the returned summary and the store's manifest.

    Events without truth (TrackML hits and cells only, as in the Kaggle test set) make a store marked
    truth-less (manifest ``"truth": false``), with one logged notice; a source that mixes events with
    and without truth is a DataError even with `skip_bad` (it is no bad event but a bad input set).
    """
    source = open_source(fmt, src, trackml=trackml, seed=seed)
    ids = source.event_ids[:max_events] if max_events else source.event_ids
    truth = bool(getattr(source, "has_truth", True))  # formats without the notion always carry truth
    if not truth:
        log.warning("no truth files: the %d event(s) in %s have hits but neither truth nor particles files; "
                    "store marked truth-less; it can be predicted and exported, not scored", len(ids), src)
    skipped = []
    meta = {"source": {"format": fmt, "path": str(Path(src))}}
    # Sources that simulate (hepmc) say what made the hits: seed, configuration.
    meta.update(getattr(source, "metadata", {}))
    with StoreWriter(out, metadata=meta, overwrite=overwrite) as writer:
        for eid in progress(ids, desc=f"ingest {fmt}", unit="event"):
            try:
                event = source.read_event(eid)
                writer.add_event(event)
            except DataError as e:
                if not skip_bad:
                    raise
                log.warning("skipped event %s: %s", eid, e)
                skipped.append({"event_id": int(eid), "error": str(e)})
        writer.metadata["skipped_events"] = skipped
        if len(skipped) == len(ids):
            raise DataError(f"every event was rejected ({len(ids)}); nothing written", file=src)
    return {"events": len(ids) - len(skipped), "skipped": skipped, "out": str(out), "truth": truth}
