"""Events for the locality study from an event store or a TrackML directory, restricted to pixel hits."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError

PIXEL_VOLUMES = (7, 8, 9)


def open_events(path):
    """(event_ids, read(eid) -> Event) for an event store (has manifest.json) or a TrackML dir / zip."""
    path = Path(path)
    if not path.exists():
        raise DataError("no such event store or TrackML directory", file=path)
    if (path / "manifest.json").exists():
        from ..io.store import EventStore

        store = EventStore(path)
        return [int(e) for e in store.event_ids], store.read_event
    from ..io.trackml import TrackMLSource

    src = TrackMLSource(path)
    return src.event_ids, lambda eid: src.read_event(eid, with_cells=False)


def pixel_hits(hits, volumes=PIXEL_VOLUMES, *, event=None):
    """The hits of the given volumes (all hits if ``volumes`` is None), index reset."""
    if volumes is None:
        return hits.reset_index(drop=True)
    if "volume_id" not in hits:
        raise DataError("cannot select pixel volumes without volume_id", event=event, column="volume_id")
    sel = hits[hits["volume_id"].isin(list(volumes))].reset_index(drop=True)
    if sel.empty:
        raise DataError(f"no hits in volumes {list(volumes)}", event=event, column="volume_id")
    return sel
