"""`trackpipe train`: train an encoder model (enccla, encreg, encreg-fa, jm, ...) into a model directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import ConfigError

EXIT_STOPPED = 3  # the training was stopped by a signal before its stopping rule


def add_arguments(p):
    p.add_argument("--data", required=True, help="training event store")
    p.add_argument("--model", required=True, help="model family (enccla, encreg, encreg-fa, jm, encdec, unet, contrastive)")
    p.add_argument("--val", help="validation event store (default: hold out training.val_fraction of --data)")
    p.add_argument("--config", help="YAML/JSON file with the model's config section (see models.registry)")
    p.add_argument("--epochs", type=int, help="override training.epochs")
    p.add_argument("--max-minutes", type=float, help="wall-clock budget in minutes: the run's length, the learning-rate "
                   "schedule spanning it (training.budget: schedule, the default), or a limit that "
                   "checkpoints an epoch-based run (training.budget: stop)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: OMP_NUM_THREADS)")
    p.add_argument("--out", required=True, help="model directory (resumed if it holds a checkpoint)")
    p.add_argument("--reselect", action="store_true",
                   help="train nothing: rerun the post-training selection (track formation, clustering grid) of the "
                        "trained model in --out on the events of --val (default --data) and update its "
                        "preprocessing.json, e.g. after an update added selection candidates; --config may give a "
                        "tracking section that replaces the recorded one's keys")


def read_config_file(path) -> dict:
    """A model section from YAML or JSON; a file holding {models: {name: section}} is not accepted here
    (the workflow passes the one section a job needs)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such config file: {path}")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping (one model's config section)")
    return data


def run(args) -> int:
    from ..train.loop import train

    if args.reselect:
        return _reselect(args)
    config = read_config_file(args.config) if args.config else None
    result = train(args.model, args.data, args.out, val=args.val, config=config, epochs=args.epochs,
                   max_minutes=args.max_minutes, seed=args.seed, threads=args.threads)
    print(f"{result.status}: {result.epochs_done} epochs, best epoch {result.best_epoch} "
          f"(validation loss {result.best_val_loss:.5g}) -> {result.out_dir}")
    if result.status == "signal":
        # Stopped by SIGTERM/SIGUSR1 (a scheduler's time limit or cancellation): not a finished model.
        print(f"trackpipe train: stopped by a signal; checkpoint written, the same command resumes from "
              f"{result.out_dir}", file=sys.stderr)
        return EXIT_STOPPED
    # A --max-minutes budget that ran out still publishes the model trained so far (exit 0).
    return 0


def _reselect(args) -> int:
    from ..train.reselect import reselect

    saved = Path(args.out) / "config.json"
    if not saved.is_file():
        raise ConfigError(f"--reselect needs a trained model directory; {args.out} has no config.json")
    model = json.loads(saved.read_text()).get("model")
    if model != args.model:
        raise ConfigError(f"{args.out} holds a {model} model, not {args.model}")
    section = read_config_file(args.config) if args.config else {}
    if set(section) - {"tracking", "model"}:
        raise ConfigError(f"--reselect takes only a tracking section from --config, not {sorted(set(section) - {'tracking', 'model'})}")
    clustering = reselect(args.out, args.val or args.data, tracking=section.get("tracking"), threads=args.threads)
    chosen = {k: v for k, v in (clustering or {}).items() if k != "grid"}
    print(f"selection rerun -> {args.out}/preprocessing.json: {json.dumps(chosen)}")
    return 0
