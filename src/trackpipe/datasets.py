"""The named datasets of the papers, built from a plain config section, sharded, split by source event.

Layout written by `build_dataset` (and by `merge_dataset` from shards)::

    out/train/  out/val/  out/test/   event stores (a split without events is not written)
    out/dataset.json                  name, kind, seed, counts per split, source events per split, config
    out/validation/*.png              validation plots (unsharded builds and merges)

The split is decided per *source* event (a simulated or real full event) with exact fractions from
(seed, number of source events), and every reduced event follows its source: no event leaks across
splits, and a shard writes exactly the events an unsharded build would put in each split.

Section keys (defaults in `DEFAULT_SECTION`, per-dataset defaults in `DATASETS`):
``kind`` (redvid | trackml), ``events`` (source events), ``seed``, ``split`` ([train, val, test]
fractions or counts), ``shards`` (jobs the workflow should use), ``redvid`` (the `sim.redvid`
config), ``trackml`` (the `sim.trackml_like` config), ``reduce`` (null or the `reduce` config),
``plots`` (write validation plots), ``reference_trackml`` (real TrackML directory overlaid on the
validation plots of TrackML-like data), ``source`` (null: simulate; ``{format, path}``: read real
events from files, `trackpipe.sources`).

A sourced dataset takes the named dataset's defaults like a simulated one, except three: ``events``
caps the source events at the first N and defaults to all of them, ``kind`` follows the format
(redvid -> redvid, every other format -> trackml) unless given, and the simulator sub-sections do
not apply (only a ``hepmc`` source keeps ``trackml``: its detector and pile-up simulation).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

from .errors import ConfigError, DataError
from .io.atomic import atomic_path
from .io.store import StoreWriter, merge_stores
from .reduce import DEFAULT_REDUCE, SPLITS, reduce_event, source_rng, split_of_sources
from .config import merge_section
from .sources import kind_of_format

log = logging.getLogger(__name__)

DEFAULT_SECTION = {
    "kind": "redvid",
    "events": 100,
    "seed": 1,
    "split": [0.8, 0.1, 0.1],
    "shards": 1,
    "redvid": {},      # completed with sim.redvid.DEFAULT_SIM
    "trackml": {},     # completed with sim.trackml_like.DEFAULT_TRACKML
    "reduce": None,    # null or completed with reduce.DEFAULT_REDUCE
    "plots": True,
    "reference_trackml": None,
    "source": None,    # null or {format, path} (trackpipe.sources)
}

_PIXEL = [7, 8, 9]


def _redvid(types, n, seed, events=2000):
    return {"kind": "redvid", "events": events, "seed": seed, "split": [0.8, 0.1, 0.1],
            "redvid": {"track_types": types, "n_tracks": n}}


def _reduced(n, seed, events=6):
    # Noise in proportion to the sampled tracks: the whole event's ~7 k pixel noise hits would swamp
    # 10-50 tracks (the thesis quotes at most 700 hits per 10-50-track event).
    return {"kind": "trackml", "events": events, "seed": seed, "split": [4, 1, 1], "trackml": {"volumes": _PIXEL},
            "reduce": {"volumes": _PIXEL, "n_particles": n, "repeats": 5, "noise": "proportional"}}


def _physics(process, mu, seed, events=4):
    return {"kind": "trackml", "events": events, "seed": seed, "split": [2, 1, 1],
            "trackml": {"generator": {"source": "auto", "process": process, "mu": float(mu)}}}


# Embedded defaults: small enough for the demo workflow on 2 cores.
DATASETS = {
    "redvid-linear-10-50": _redvid(["linear"], [10, 50], 101),
    "redvid-helical-10-50": _redvid(["helical_expanding"], [10, 50], 102),
    "redvid-helical-50-100": _redvid(["helical_expanding"], [50, 100], 103),
    "trackml-10-50": _reduced([10, 50], 201),
    "trackml-200-500": _reduced([200, 500], 202),
    "hllhc-pixel": {"kind": "trackml", "events": 3, "seed": 301, "split": [1, 1, 1], "trackml": {"volumes": _PIXEL},
                    "reduce": None},
    **{f"tth-pu{mu}": _physics("tth", mu, 400 + mu) for mu in (0, 5, 20, 50, 200)},
    **{f"ttbar-pu{mu}": _physics("ttbar", mu, 500 + mu) for mu in (0, 5, 20, 50, 200)},
}

# Sizes of the papers (for config/paper.yaml): 100 000 events per REDVID set [P1 §2.1]; 8 745 source
# events x 5 repeats = 43 725 reduced TrackML events [P1 §2.2]; 8 658 / 96 / 96 HL-LHC pixel events
# [P2]; 20 000 signal + 20 000 background events per pile-up level [P2 §2.1].
PAPER_SIZES = {
    **{n: {"events": 100_000, "shards": 20} for n in DATASETS if n.startswith("redvid")},
    "trackml-10-50": {"events": 8745, "split": [0.8, 0.1, 0.1], "shards": 100},
    "trackml-200-500": {"events": 8745, "split": [0.8, 0.1, 0.1], "shards": 100},
    "hllhc-pixel": {"events": 8850, "split": [8658, 96, 96], "shards": 100},
    **{n: {"events": 20_000, "split": [0.8, 0.1, 0.1], "shards": 200} for n in DATASETS if "-pu" in n},
}


def dataset_section(name: str, section: dict | None = None) -> dict:
    """The full section of a dataset: generic defaults < the named dataset's defaults < `section`.

    The simulator sub-section of the dataset's kind (``redvid`` or ``trackml``) and ``reduce`` are
    completed with the simulators' own defaults, so the result records every setting used.
    """
    from .sim.redvid import DEFAULT_SIM
    from .sim.trackml_like import DEFAULT_TRACKML

    if name not in DATASETS and not section:
        raise ConfigError(f"unknown dataset {name!r} and no config section for it; known: {sorted(DATASETS)}")
    named, section = DATASETS.get(name, {}), dict(section or {})
    source = _source_section(name, section.get("source"))
    if source is not None:
        # Read events: all of them unless capped, the kind of the format, no simulator settings.
        named = {k: v for k, v in named.items() if k not in ("events", "kind")}
        section = {"events": None, "kind": kind_of_format(source["format"]), **section, "source": source}
    subs = ("redvid", "trackml", "reduce")
    sec = merge_section(DEFAULT_SECTION, {k: v for k, v in named.items() if k not in subs}, f"datasets.{name}")
    sec = merge_section(sec, {k: v for k, v in section.items() if k not in subs}, f"datasets.{name}")
    if sec["kind"] not in ("redvid", "trackml"):
        raise ConfigError(f"datasets.{name}.kind: {sec['kind']!r} is not 'redvid' or 'trackml'")
    kind = sec["kind"]
    if source is None:
        simulator = kind
    else:
        simulator = "trackml" if source["format"] == "hepmc" else None
        for unused in {"redvid", "trackml"} - {simulator}:
            if section.get(unused):
                raise ConfigError(f"datasets.{name}.{unused}: a dataset read from {source['format']} files is not "
                                  f"simulated (only a hepmc source uses the trackml section)")
    for sub in ("redvid", "trackml"):
        if sub != simulator:
            sec.pop(sub)
    if simulator is not None:
        defaults = DEFAULT_SIM if simulator == "redvid" else DEFAULT_TRACKML
        sim = merge_section(defaults, named.get(simulator), f"datasets.{name}.{simulator}")
        sec[simulator] = merge_section(sim, section.get(simulator), f"datasets.{name}.{simulator}")
        if source is not None and not any("mu" in ((s.get("trackml") or {}).get("generator") or {})
                                          for s in (named, section)):
            # A HepMC file's event is the collision: pile-up only when asked for, as trackpipe.io.hepmc
            # does (the simulator's default <mu> = 200 would bury it); recorded as mu 0.
            sec["trackml"]["generator"]["mu"] = 0.0
    reduce = section["reduce"] if "reduce" in section and section["reduce"] is None else named.get("reduce")
    if "reduce" in section and section["reduce"] is not None:
        reduce = merge_section(DEFAULT_REDUCE if reduce is None else merge_section(DEFAULT_REDUCE, reduce, name),
                               section["reduce"], f"datasets.{name}.reduce")
    elif reduce is not None:
        reduce = merge_section(DEFAULT_REDUCE, reduce, f"datasets.{name}.reduce")
    sec["reduce"] = reduce
    if (sec["events"] is None and source is None) or (sec["events"] is not None and int(sec["events"]) < 1):
        raise ConfigError(f"datasets.{name}.events must be >= 1 (only a dataset with a source may leave it unset)")
    return sec


def _source_section(name: str, source) -> dict | None:
    """A dataset's ``source`` checked: null, or exactly {format, path} with a known format."""
    if source is None:
        return None
    where = f"datasets.{name}.source"
    if not isinstance(source, dict):
        raise ConfigError(f"{where}: expected {{format: ..., path: ...}}, got {source!r}")
    source = merge_section({"format": None, "path": None}, source, where)
    for key in ("format", "path"):
        if not source[key]:
            raise ConfigError(f"{where}.{key} is required")
    kind_of_format(source["format"])
    return {"format": str(source["format"]), "path": str(source["path"])}


def shard_range(n: int, shard, align: int = 1) -> range:
    """Contiguous source indices of shard (i, k), boundaries rounded to multiples of `align`."""
    i, k = (int(v) for v in shard)
    if not (k >= 1 and 0 <= i < k):
        raise ConfigError(f"shard must be (i, n) with 0 <= i < n, got {shard!r}")
    units = -(-n // align)
    lo, hi = units * i // k * align, units * (i + 1) // k * align
    return range(min(lo, n), min(hi, n))


def _file_source(name: str, sec: dict, trackml_csv, redvid_csv) -> dict | None:
    """The files the events come from: the section's ``source``, or the CLI's ``--trackml-csv`` /
    ``--redvid-csv`` for a dataset of that kind; None to simulate."""
    cli = {"trackml": trackml_csv, "redvid": redvid_csv}.get(sec["kind"])
    if sec["source"] is not None and cli:
        raise ConfigError(f"datasets.{name}: both a source in the config ({sec['source']['path']}) and {cli} given")
    if sec["source"] is not None:
        return sec["source"]
    return {"format": sec["kind"], "path": str(cli)} if cli else None


def _sources(name: str, sec: dict, source: dict | None, *, n_events, seed):
    """(list of source event ids in index order, a function ids -> events, batch alignment, files read)."""
    kind = sec["kind"]
    if source is not None:
        from .sources import open_dataset_source

        src = open_dataset_source(source, limit=n_events, trackml=sec.get("trackml"), seed=seed,
                                  where=f"datasets.{name}.source")
        # Without cells, as simulated TrackML-like datasets (which have none): they are the largest part to read.
        kw = {"with_cells": False} if source["format"] == "trackml" else {}
        files = [str(m) for m in src.members_used]
        return src.event_ids, lambda sel: (src.read_event(e, **kw) for e in sel), 1, files
    ids = list(range(int(n_events)))
    if kind == "redvid":
        from .sim.redvid import simulate_redvid

        align = int(sec["redvid"]["batch_events"])
        return ids, lambda sel: simulate_redvid(sec["redvid"], sel, seed), align, []
    from .sim.trackml_like import simulate_trackml

    return ids, lambda sel: simulate_trackml(sec["trackml"], sel, seed), 1, []


class _SplitWriters:
    """One lazily opened store per split (a split that gets no event writes nothing)."""

    def __init__(self, root: Path, metadata: dict, validate: bool):
        self.root, self.metadata, self.validate = root, metadata, validate
        self.writers: dict[str, StoreWriter] = {}
        self.counts = {s: 0 for s in SPLITS}
        self.sources = {s: [] for s in SPLITS}

    def add(self, split: str, event) -> None:
        if split not in self.writers:
            self.writers[split] = StoreWriter(self.root / split, metadata=dict(self.metadata, split=split),
                                              validate=self.validate)
        self.writers[split].add_event(event)
        self.counts[split] += 1

    def close(self, ok: bool) -> None:
        for w in self.writers.values():
            w.close() if ok else w.abort()


def build_dataset(name: str, section: dict | None, out, *, n_events: int | None = None, seed: int | None = None,
                  shard=(0, 1), trackml_csv=None, redvid_csv=None, reference_trackml=None, overwrite: bool = False,
                  plots: bool | None = None) -> dict:
    """Simulate (or read) and reduce the dataset `name`, writing split stores under `out`.

    `n_events` and `seed` override the section; `shard` = (i, n) builds the i-th of n contiguous
    parts of the source events (merge them with `merge_dataset`); only that part is simulated or
    read. `trackml_csv` / `redvid_csv` read a dataset of that kind from files (as a ``source`` in the
    section does). Returns the dataset summary.
    """
    sec = dataset_section(name, section)
    n_events = sec["events"] if n_events is None else n_events
    n_events = None if n_events is None else int(n_events)
    seed = int(sec["seed"] if seed is None else seed)
    source = _file_source(name, sec, trackml_csv, redvid_csv)
    ids, events_of, align, files = _sources(name, sec, source, n_events=n_events, seed=seed)
    if not ids:
        raise DataError("no source events", file=None if source is None else source["path"])
    split = split_of_sources(len(ids), sec["split"], seed)
    position = {int(e): i for i, e in enumerate(ids)}
    part = shard_range(len(ids), shard, align)
    mine = [ids[i] for i in part]
    source_desc = "simulation" if source is None else source["path"]
    meta = {"source": {"dataset": name, "kind": sec["kind"], "from": source_desc}, "seed": seed,
            "config": sec}
    out = Path(out)
    with atomic_path(out, overwrite=overwrite, is_dir=True) as tmp:
        # The REDVID-like simulator's output is consistent by construction (tests check it) and per-event
        # validation would cost twice the simulation; every other source is validated event by event.
        simulated_toy = sec["kind"] == "redvid" and source is None
        writers = _SplitWriters(tmp, meta, validate=not simulated_toy)
        ok = False
        try:
            for ev in events_of(mine):
                s = SPLITS[split[position[int(ev.event_id)]]]
                writers.sources[s].append(int(ev.event_id))
                if sec["reduce"] is None:
                    writers.add(s, ev)
                    continue
                for red in reduce_event(ev, sec["reduce"], source_rng(seed, ev.event_id)):
                    writers.add(s, red)
            ok = True
        finally:
            writers.close(ok)
        summary = {"name": name, "kind": sec["kind"], "seed": seed, "source": source_desc,
                   "source_format": None if source is None else source["format"], "source_files": files,
                   "source_events": len(ids), "shard": [int(v) for v in shard],
                   "events": writers.counts, "source_ids": writers.sources, "config": sec}
        (tmp / "dataset.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
        want_plots = sec["plots"] if plots is None else plots
        if want_plots and int(shard[1]) == 1:
            _plots(tmp, sec, reference_trackml)
    return summary


def merge_dataset(shard_dirs, out, *, name: str | None = None, reference_trackml=None, overwrite: bool = False,
                  plots: bool = True) -> dict:
    """Join the shard directories of one dataset into `out` (same layout as an unsharded build).

    `name`, when given, must be the dataset the shards were built for.
    """
    shard_dirs = [Path(d) for d in shard_dirs]
    infos = []
    for d in shard_dirs:
        f = d / "dataset.json"
        if not f.is_file():
            raise DataError("not a dataset directory (no dataset.json)", file=d)
        infos.append(json.loads(f.read_text()))
    names = {i["name"] for i in infos}
    if len(names) != 1:
        raise DataError(f"shards of different datasets: {sorted(names)}", file=shard_dirs[0])
    if name is not None and names != {name}:
        raise DataError(f"the shards belong to dataset {names.pop()!r}, not {name!r}", file=shard_dirs[0])
    shards = sorted(tuple(i["shard"]) for i in infos)
    if len({n for _, n in shards}) != 1 or [i for i, _ in shards] != list(range(shards[0][1])):
        raise DataError(f"incomplete or mixed shards {shards}: expected 0..n-1 of one n", file=shard_dirs[0])
    for key in ("source", "source_files", "source_events"):
        if len({json.dumps(i.get(key)) for i in infos}) > 1:
            raise DataError(f"shards read from different sources ({key} differs)", file=shard_dirs[0])
    first = infos[0]
    with atomic_path(Path(out), overwrite=overwrite, is_dir=True) as tmp:
        counts, sources = {}, {}
        for s in SPLITS:
            parts = [d / s for d in shard_dirs if (d / s).is_dir()]
            counts[s] = sum(i["events"][s] for i in infos)
            sources[s] = sorted(e for i in infos for e in i["source_ids"][s])
            if parts:
                merge_stores(parts, tmp / s)
        summary = dict(first, shard=[0, 1], events=counts, source_ids=sources, merged_from=[str(d) for d in shard_dirs])
        (tmp / "dataset.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
        if plots and first["config"].get("plots", True):
            _plots(tmp, first["config"], reference_trackml or first["config"].get("reference_trackml"))
    return summary


def _plots(root: Path, sec: dict, reference_trackml) -> None:
    from .plots.validation import validation_plots

    stores = [root / s for s in SPLITS if (root / s).is_dir()]
    reference = reference_trackml or sec.get("reference_trackml")
    validation_plots(stores, root / "validation", kind=sec["kind"], reference_trackml=reference)


def default_sections(paper: bool = False) -> dict:
    """The `datasets:` mapping for a config file (demo sizes, or the papers' sizes)."""
    out = copy.deepcopy(DATASETS)
    if paper:
        for name, sizes in PAPER_SIZES.items():
            out[name].update(sizes)
    return out
