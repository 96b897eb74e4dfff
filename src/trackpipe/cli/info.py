from __future__ import annotations

import json

from ..io.store import EventStore


def add_arguments(p) -> None:
    p.add_argument("store", help="event store directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    info = EventStore(args.store).info()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    print(f"store      {info['path']}")
    print(f"events     {info['n_events']}")
    print(f"hits       {info['n_hits']}  (per event: min {info['hits_per_event']['min']}, "
          f"median {info['hits_per_event']['median']:g}, max {info['hits_per_event']['max']})")
    print(f"particles  {info['n_particles']}")
    print("volumes    " + ", ".join(f"{k}: {v}" for k, v in info["volumes"].items()))
    print("truth      " + ("yes" if info["truth"] else "no (truth-less store: it can be predicted and exported, "
                                                       "not scored)"))
    if info.get("source"):
        print(f"source     {info['source']}")
    return 0
