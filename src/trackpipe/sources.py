"""Datasets read from files: one path, directory or glob as one ordered stream of source events.

A dataset's ``source: {format, path}`` names real events instead of a simulation. ``path`` is

* a file or an event directory (a TrackML or ACTS directory of ``event<9 digits>-<part>.csv[.gz]``
  files, a TrackML zip, a REDVID or reduced-TrackML CSV file, a HepMC file): one source;
* a directory of such sources (`members_of_directory`: the zips and event sub-directories of a TrackML
  directory, the event sub-directories of an ACTS directory, the CSV files of a REDVID or
  reduced-TrackML directory, the HepMC files of a HepMC directory);
* a glob (``*``, ``?``, ``[``; ``**`` recurses), e.g. ``../data/trackml/train_*.zip``.

Relative paths are relative to the working directory (the repository root for the workflow).
The members are taken in sorted path order and their events concatenated, each member's events in
that member's own order, so the i-th source event is the same for every shard job. An event id in
two members is an error naming both. Members are opened lazily: with an ``events`` cap only the
members holding the first N events are opened, and a TrackML zip lists its events from the zip's
central directory alone, so a shard job reads only its own events.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

from .errors import ConfigError, DataError

SOURCE_FORMATS = ("trackml", "acts", "redvid", "trackml-reduced", "hepmc")
_GLOB_CHARS = re.compile(r"[*?\[]")
_EVENT_FILE = re.compile(r"^event\d{9}-[a-z_\-]+\.csv(\.gz)?$")
# File members of a directory, per format whose sources are single files.
_FILE_SUFFIXES = {
    "redvid": (".csv", ".csv.gz"),
    "trackml-reduced": (".csv", ".csv.gz"),
    "hepmc": (".hepmc", ".hepmc3", ".hepmc.gz", ".hepmc3.gz"),
}


def kind_of_format(fmt: str) -> str:
    """The dataset kind of events read in format `fmt`: REDVID CSV gives REDVID events, the rest TrackML-like."""
    if fmt not in SOURCE_FORMATS:
        raise ConfigError(f"source format {fmt!r} is not one of {list(SOURCE_FORMATS)}")
    return "redvid" if fmt == "redvid" else "trackml"


def _is_event_dir(path: Path) -> bool:
    return path.is_dir() and any(_EVENT_FILE.match(p.name) for p in path.iterdir())


def members_of_directory(fmt: str, path: Path) -> list[Path]:
    """The sources a directory stands for: itself if it holds event files, else its members (sorted)."""
    if fmt in ("trackml", "acts") and _is_event_dir(path):
        return [path]
    entries = sorted(path.iterdir())
    if fmt == "trackml":
        return [p for p in entries if (p.is_file() and p.suffix == ".zip") or _is_event_dir(p)]
    if fmt == "acts":
        return [p for p in entries if _is_event_dir(p)]
    return [p for p in entries if p.is_file() and p.name.endswith(_FILE_SUFFIXES[fmt])]


def source_members(fmt: str, path, *, where: str = "source.path") -> list[Path]:
    """The ordered member sources of a configured `path` (see the module doc); nothing found is an error.

    `where` names the config key in the error (e.g. ``datasets.trackml-10-50.source.path``).
    """
    kind_of_format(fmt)
    text = str(path)
    relative = "" if Path(text).is_absolute() else f" (relative to the working directory {Path.cwd()})"
    if _GLOB_CHARS.search(text):
        found = sorted(Path(p) for p in glob.glob(text, recursive=True))
        members = [m for p in found for m in (members_of_directory(fmt, p) if p.is_dir() else [p])]
        if not members:
            raise ConfigError(f"{where}: {text!r} matches no {fmt} file or directory{relative}")
        return members
    p = Path(text)
    if not p.exists():
        raise ConfigError(f"{where}: {text!r}: no such file or directory{relative}")
    if not p.is_dir():
        return [p]
    members = members_of_directory(fmt, p)
    if not members:
        raise ConfigError(f"{where}: directory {text!r} holds no {fmt} events or sources{relative}")
    return members


class MultiSource:
    """Several member sources of one format read as one: event ids in member order, unique across members.

    `limit` caps the events at the first N (members past the N-th event are never opened).
    """

    def __init__(self, fmt: str, members, *, limit: int | None = None, trackml: dict | None = None, seed: int = 0):
        from .io.ingest import open_source

        self.fmt, self.members = fmt, [Path(m) for m in members]
        if not self.members:
            raise ConfigError(f"a {fmt} source needs at least one file or directory")
        self._opened: dict[int, object] = {}
        self._open = lambda m: open_source(fmt, m, trackml=trackml, seed=seed)
        self._ids: list[int] = []
        self._member_of: dict[int, int] = {}
        for k in range(len(self.members)):
            if limit is not None and len(self._ids) >= limit:
                break
            for eid in self._member(k).event_ids:
                eid = int(eid)
                if eid in self._member_of:
                    raise DataError(f"event id {eid} is in two source files: {self.members[self._member_of[eid]]} "
                                    f"and {self.members[k]}", file=self.members[k], event=eid)
                self._member_of[eid] = k
                self._ids.append(eid)
        if limit is not None:
            for eid in self._ids[limit:]:
                del self._member_of[eid]
            del self._ids[limit:]

    @property
    def members_used(self) -> list[Path]:
        """The members that hold the (capped) events, in order."""
        return [self.members[k] for k in sorted(set(self._member_of.values()))]

    def _member(self, k: int):
        if k not in self._opened:
            self._opened[k] = self._open(self.members[k])
        return self._opened[k]

    @property
    def event_ids(self) -> list[int]:
        return list(self._ids)

    def file_of(self, event_id: int) -> Path:
        """The member source holding `event_id`."""
        try:
            return self.members[self._member_of[int(event_id)]]
        except KeyError:
            raise DataError("no such event in the source", file=self.members[0], event=event_id) from None

    def read_event(self, event_id: int, **kwargs):
        """One event, read by its member's reader (`kwargs` go to that reader, e.g. TrackML's ``with_cells``)."""
        self.file_of(event_id)
        return self._member(self._member_of[int(event_id)]).read_event(int(event_id), **kwargs)


def source_has_truth(fmt: str, members) -> bool:
    """Whether a source's files carry truth, from their listing alone (nothing is decompressed).

    Only TrackML files come without it (the challenge's test events: hits and cells only); the other
    formats always have truth. Members with and without truth in one source are an error naming both.
    """
    if fmt != "trackml":
        return True
    from .io.trackml import TrackMLSource

    flags = {Path(m): TrackMLSource(m).has_truth for m in members}
    if len(set(flags.values())) > 1:
        with_truth = next(m for m, f in flags.items() if f)
        without = next(m for m, f in flags.items() if not f)
        raise DataError(f"the source mixes files with truth ({with_truth}) and without ({without}); make them two "
                        "datasets", file=without)
    return all(flags.values())


def open_dataset_source(source: dict, *, limit: int | None = None, trackml: dict | None = None, seed: int = 0,
                        where: str = "source") -> MultiSource:
    """The `MultiSource` of a dataset's ``source: {format, path}`` section."""
    fmt, path = source["format"], source["path"]
    members = source_members(fmt, path, where=f"{where}.path")
    return MultiSource(fmt, members, limit=limit, trackml=trackml, seed=seed)
