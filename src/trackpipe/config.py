"""Config sections: merged over their documented defaults, unknown keys are errors (typos never pass).

Every stage takes a plain dict; this module is the one place that completes and checks it.
"""

from __future__ import annotations

import copy

from .errors import ConfigError


def merge_section(defaults: dict, section: dict | None, where: str) -> dict:
    """`defaults` updated recursively by `section`; a key not in `defaults` raises ConfigError.

    Sub-dicts of `defaults` whose own defaults are empty (``{}``) accept any keys.
    """
    out = copy.deepcopy(defaults)
    for key, value in (section or {}).items():
        if key not in out:
            raise ConfigError(f"unknown key {where}.{key}; allowed: {sorted(out)}")
        if isinstance(out[key], dict) and out[key] and isinstance(value, dict):
            out[key] = merge_section(out[key], value, f"{where}.{key}")
        else:
            out[key] = copy.deepcopy(value)
    return out


def as_range(value, where: str, *, integer: bool = False) -> tuple:
    """A [min, max] pair (a scalar means min = max)."""
    if isinstance(value, (int, float)):
        value = [value, value]
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected [min, max], got {value!r}") from None
    cast = int if integer else float
    lo, hi = cast(lo), cast(hi)
    if lo > hi:
        raise ConfigError(f"{where}: min {lo} is larger than max {hi}")
    return lo, hi
