"""Exception types: bad input (carrying where the problem is), bad configuration, unfinished training."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data. The message names the file, the event and the column where known."""

    def __init__(self, message: str, *, file=None, event=None, column=None):
        self.file = None if file is None else str(file)
        self.event = event
        self.column = column
        self.reason = message
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if event is not None:
            where.append(f"event {event}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ConfigError(ValueError):
    """A configuration value is missing or not allowed."""


class TrainingIncomplete(RuntimeError):
    """Training stopped before its stopping rule (time budget or a scheduler's signal); a checkpoint holds
    the state, so running the same job again resumes it."""
