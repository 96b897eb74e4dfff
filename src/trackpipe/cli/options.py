"""Option values shared by several sub-commands."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError


def json_object(text: str | None, option: str) -> dict:
    """A JSON object given inline or as the path of a JSON file ({} when absent); ConfigError otherwise."""
    if not text:
        return {}
    path = Path(text)
    try:
        value = json.loads(path.read_text() if path.is_file() else text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{option} is neither a JSON file nor valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{option} takes a JSON object")
    return value
