"""Join a truth table and a submission hit by hit, one-to-one, with clear errors.

Both tables are keyed by (event_id, hit_id). The join is done with one sort per table (no hash
merge, no Python loop): after sorting, a valid submission has exactly the truth's keys in the same
order. Anything else (a truth hit missing from the submission, a hit submitted twice, a submitted
hit that the truth does not have) is a `DataError` naming the event and the column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError


@dataclass
class AlignedHits:
    """Per-hit arrays of one or many events, sorted by (event, hit_id).

    `event` holds dense event codes 0..E-1 (`event_ids[event]` is the real id); the other arrays come
    from the truth (`particle_id`, `weight`, extra columns) and the submission (`track_id`).
    """

    event_ids: np.ndarray
    event: np.ndarray
    hit_id: np.ndarray
    particle_id: np.ndarray
    track_id: np.ndarray
    weight: np.ndarray | None
    extra: dict[str, np.ndarray]

    @property
    def n_events(self) -> int:
        return len(self.event_ids)


def with_event_ids(truth: pd.DataFrame, submission: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give both tables an `event_id` column when only one of them (or neither) has it.

    A table without the column is taken to be one event: the other table's only event, or event 0.
    """
    t_has, s_has = "event_id" in truth.columns, "event_id" in submission.columns
    if t_has and s_has:
        return truth, submission
    if not t_has and not s_has:
        return truth.assign(event_id=np.int64(0)), submission.assign(event_id=np.int64(0))
    have, lack, lack_name = (truth, submission, "submission") if t_has else (submission, truth, "truth")
    events = pd.unique(have["event_id"])
    if len(events) > 1:
        raise DataError(f"the {lack_name} has no event_id column but the other table holds {len(events)} events",
                        column="event_id")
    filled = lack.assign(event_id=np.int64(events[0]) if len(events) else np.int64(0))
    return (truth, filled) if t_has else (filled, submission)


def _require(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what} lacks column(s) {missing}; found {list(df.columns)}", column=", ".join(missing))


def _event_codes(*arrays: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Dense codes, ordered like the event ids, shared by all `arrays`."""
    joined = np.concatenate(arrays) if arrays else np.empty(0, np.int64)
    codes, uniques = pd.factorize(joined, sort=True)
    out, start = [], 0
    for a in arrays:
        out.append(codes[start:start + len(a)].astype(np.int64))
        start += len(a)
    return np.asarray(uniques, dtype=np.int64), out


def _first_duplicate(ev: np.ndarray, hit: np.ndarray) -> int | None:
    """Index (into the sorted arrays) of the first repeated (event, hit) pair, or None."""
    same = (ev[1:] == ev[:-1]) & (hit[1:] == hit[:-1])
    if same.any():
        return int(np.flatnonzero(same)[0]) + 1
    return None


def align(truth: pd.DataFrame, submission: pd.DataFrame, *, weight: str | None = "weight",
          extra: tuple[str, ...] = ()) -> AlignedHits:
    """Join `truth` (event_id, hit_id, particle_id, [weight], extra...) with `submission` (event_id,
    hit_id, track_id), one-to-one, raising `DataError` on any mismatch."""
    truth, submission = with_event_ids(truth, submission)
    _require(truth, ["event_id", "hit_id", "particle_id"] + ([weight] if weight else []) + list(extra), "truth")
    _require(submission, ["event_id", "hit_id", "track_id"], "submission")
    event_ids, (t_ev, s_ev) = _event_codes(truth["event_id"].to_numpy(np.int64),
                                           submission["event_id"].to_numpy(np.int64))
    t_hit = truth["hit_id"].to_numpy(np.int64)
    s_hit = submission["hit_id"].to_numpy(np.int64)
    t_order = np.lexsort((t_hit, t_ev))
    s_order = np.lexsort((s_hit, s_ev))
    t_ev, t_hit = t_ev[t_order], t_hit[t_order]
    s_ev, s_hit = s_ev[s_order], s_hit[s_order]
    for name, ev, hit in (("truth", t_ev, t_hit), ("submission", s_ev, s_hit)):
        i = _first_duplicate(ev, hit)
        if i is not None:
            n = int(((ev == ev[i]) & (hit == hit[i])).sum())
            raise DataError(f"hit {int(hit[i])} appears {n} times in the {name}", event=int(event_ids[ev[i]]),
                            column="hit_id")
    if len(t_ev) != len(s_ev) or not (np.array_equal(t_ev, s_ev) and np.array_equal(t_hit, s_hit)):
        _raise_mismatch(event_ids, t_ev, t_hit, s_ev, s_hit)
    return AlignedHits(
        event_ids=event_ids,
        event=t_ev,
        hit_id=t_hit,
        particle_id=truth["particle_id"].to_numpy(np.int64)[t_order],
        track_id=submission["track_id"].to_numpy(np.int64)[s_order],
        weight=truth[weight].to_numpy(np.float64)[t_order] if weight else None,
        extra={c: truth[c].to_numpy()[t_order] for c in extra},
    )


def _raise_mismatch(event_ids, t_ev, t_hit, s_ev, s_hit) -> None:
    """Name the first event where the two key sets differ (slow path, only on bad input)."""
    t = pd.DataFrame({"ev": t_ev, "hit_id": t_hit})
    s = pd.DataFrame({"ev": s_ev, "hit_id": s_hit})
    both = t.merge(s, how="outer", on=["ev", "hit_id"], indicator=True)
    missing = both[both["_merge"] == "left_only"]
    unknown = both[both["_merge"] == "right_only"]
    if len(missing):
        first = missing.iloc[0]
        ev = int(first.ev)
        n = int((missing.ev == ev).sum())
        raise DataError(f"{n} hit(s) of the truth are missing from the submission (first: hit {int(first.hit_id)}); "
                        "every hit must be assigned to exactly one track", event=int(event_ids[ev]), column="hit_id")
    first = unknown.iloc[0]
    ev = int(first.ev)
    n = int((unknown.ev == ev).sum())
    in_truth = bool((t_ev == ev).any())
    what = "are not in the truth" if in_truth else "belong to an event the truth does not have"
    raise DataError(f"{n} submitted hit(s) {what} (first: hit {int(first.hit_id)})", event=int(event_ids[ev]),
                    column="hit_id" if in_truth else "event_id")
