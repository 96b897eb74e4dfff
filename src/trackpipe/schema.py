"""The event-store and submission schemas, declared once.

Every table that crosses a stage boundary is described here: its columns, their dtypes and units.
Readers cast to these dtypes, writers write them, validation checks against them. Particle ids are
always int64: float32 keeps only 24 significant bits and silently merges TrackML particle ids.

Units: positions in mm, momenta in GeV/c, charge in e.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # numpy dtype name, or "string"
    required: bool
    doc: str

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.string() if self.dtype == "string" else pa.from_numpy_dtype(np.dtype(self.dtype))


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # columns that must be unique together

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def dtypes(self) -> dict[str, str]:
        return {c.name: c.dtype for c in self.columns}

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    def arrow_schema(self, present: list[str]) -> pa.Schema:
        """Arrow schema for the columns of this table that are present, in declared order."""
        return pa.schema([pa.field(c.name, c.arrow_type) for c in self.columns if c.name in present])


def _c(name, dtype, required, doc):
    return Column(name, dtype, required, doc)


HITS = Table(
    "hits",
    (
        _c("event_id", "int64", True, "event number"),
        _c("hit_id", "int64", True, "hit id, unique within the event (TrackML: 1-based)"),
        _c("x", "float32", True, "measured position, mm"),
        _c("y", "float32", True, "measured position, mm"),
        _c("z", "float32", True, "measured position, mm"),
        _c("volume_id", "int32", True, "detector volume (TrackML: 7-18; REDVID: sub-detector type code, see io.redvid)"),
        _c("layer_id", "int32", True, "layer within the volume (REDVID: sub_detector_id)"),
        _c("module_id", "int32", True, "module within the layer"),
        # The two truth columns: present in every store with truth, absent from a truth-less store
        # (manifest "truth": false, e.g. TrackML Kaggle test events); see TRUTH_COLUMNS.
        _c("particle_id", "int64", False, "true particle (0 = noise); REDVID: track id; absent without truth"),
        _c("weight", "float32", False, "TrackML score weight of the hit (REDVID: 1); absent without truth"),
        _c("tx", "float32", False, "true intersection position, mm"),
        _c("ty", "float32", False, "true intersection position, mm"),
        _c("tz", "float32", False, "true intersection position, mm"),
        _c("tpx", "float32", False, "true momentum at the hit, GeV/c"),
        _c("tpy", "float32", False, "true momentum at the hit, GeV/c"),
        _c("tpz", "float32", False, "true momentum at the hit, GeV/c"),
    ),
    key=("event_id", "hit_id"),
)

PARTICLES = Table(
    "particles",
    (
        _c("event_id", "int64", True, "event number"),
        _c("particle_id", "int64", True, "particle id (TrackML bit layout, see io.acts for ACTS)"),
        _c("vx", "float32", True, "production vertex, mm"),
        _c("vy", "float32", True, "production vertex, mm"),
        _c("vz", "float32", True, "production vertex, mm"),
        _c("px", "float32", True, "initial momentum, GeV/c (REDVID: 0)"),
        _c("py", "float32", True, "initial momentum, GeV/c (REDVID: 0)"),
        _c("pz", "float32", True, "initial momentum, GeV/c (REDVID: 0)"),
        _c("q", "int32", True, "charge, e"),
        _c("nhits", "int32", True, "number of hits the particle left (= its rows in hits)"),
        _c("particle_type", "int32", False, "PDG id"),
        _c("track_type", "string", False, "REDVID track type: linear, helical, helical_expanding"),
        # REDVID helical parameters: r = r0 + a t, theta = theta0 + d t, z = z0 + b t.
        _c("radial_const", "float64", False, "REDVID r0"),
        _c("azimuthal_const", "float64", False, "REDVID theta0"),
        _c("pitch_const", "float64", False, "REDVID z0"),
        _c("radial_coeff", "float64", False, "REDVID a (dr/dt)"),
        _c("azimuthal_coeff", "float64", False, "REDVID d (dtheta/dt)"),
        _c("pitch_coeff", "float64", False, "REDVID b (dz/dt)"),
        # REDVID linear parameters: a start point and a direction in (r, theta, z).
        _c("r_0", "float64", False, "REDVID linear start r"),
        _c("theta_0", "float64", False, "REDVID linear start theta"),
        _c("z_0", "float64", False, "REDVID linear start z"),
        _c("r_d", "float64", False, "REDVID linear direction r"),
        _c("theta_d", "float64", False, "REDVID linear direction theta"),
        _c("z_d", "float64", False, "REDVID linear direction z"),
    ),
    key=("event_id", "particle_id"),
)

CELLS = Table(
    "cells",
    (
        _c("event_id", "int64", True, "event number"),
        _c("hit_id", "int64", True, "hit the cell belongs to"),
        _c("ch0", "int32", True, "channel index 0"),
        _c("ch1", "int32", True, "channel index 1"),
        _c("value", "float32", True, "deposited signal"),
    ),
    key=("event_id", "hit_id", "ch0", "ch1"),
)

SUBMISSION = Table(
    "submission",
    (
        _c("event_id", "int64", True, "event number"),
        _c("hit_id", "int64", True, "hit id"),
        _c("track_id", "int64", True, "reconstructed track (non-negative)"),
    ),
    key=("event_id", "hit_id"),
)

# Per-event inference timing written by every predictor (see tracking.runner and predict): device_ms is
# the forward pass on the device (CUDA events on GPU, wall clock on CPU), host_cpu_ms the process time
# of pre/post-processing, wall_ms the whole event; `device` names where the forward ran (cpu, cuda).
TIMING = Table(
    "timing",
    (
        _c("event_id", "int64", True, "event number"),
        _c("n_hits", "int64", True, "hits in the event"),
        _c("device_ms", "float64", True, "forward pass on the device, ms"),
        _c("host_cpu_ms", "float64", True, "host process time of pre/post-processing, ms"),
        _c("wall_ms", "float64", True, "whole event, wall clock, ms"),
        _c("device", "string", True, "cpu or cuda"),
    ),
    key=("event_id",),
)
#: Marker in the timing/metrics `attention` text of an attention path that is not the configured one
#: (models.attention writes it, the tables footnote such results).
ATTENTION_FALLBACK = "fallback"
TIMING_MEASURES = ("device_ms", "host_cpu_ms", "wall_ms")

TABLES = {t.name: t for t in (HITS, PARTICLES, CELLS)}

# Hits columns that carry the truth: a store has both (manifest "truth": true) or neither ("truth":
# false: its particles table is empty); io.validate.hits_have_truth enforces it.
TRUTH_COLUMNS = ("particle_id", "weight")

# Float columns that must be finite wherever they appear.
FINITE_COLUMNS = {
    "hits": ("x", "y", "z", "weight"),
    "particles": ("vx", "vy", "vz", "px", "py", "pz"),
    "cells": ("value",),
}

PIXEL_VOLUMES = (7, 8, 9)
