"""The `trackpipe` command line: one thin module per sub-command, listed in COMMANDS.

Each module defines `add_arguments(parser)` and `run(args) -> int`; logic lives in the package.
Bad input (`DataError`, `ConfigError`) ends with exit status 2 and one clear message on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import ConfigError, DataError

# name -> (module, one-line help)
COMMANDS = {
    "ingest": ("ingest", "convert TrackML / ACTS / REDVID / reduced-TrackML / HepMC3 files into an event store"),
    "info": ("info", "summarise an event store"),
    "export": ("export", "write an event store back as TrackML or REDVID CSV"),
    "simulate": ("simulate", "simulate a named dataset (REDVID-like, TrackML-like, physics samples) into split stores"),
    "score": ("score", "score a submission: TrackML score, efficiencies, fake and duplicate rates"),
    "locality": ("locality", "projection clustering metrics per region (reconstructible ratio, attention fraction)"),
    "train": ("train", "train a model (enccla, encreg, encreg-fa, jm) into a model directory"),
    "predict": ("predict", "reconstruct tracks with a trained model or the helix-dbscan baseline: submission, timing, posteriors"),
    "bench": ("bench", "scaling study + matmul reference: ms/event vs hits per model, GFLOP/s, fraction of peak"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trackpipe", description="Transformer-based track reconstruction pipeline")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(f"{__name__}.{module}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args._run(args) or 0)
    except (DataError, ConfigError, FileExistsError) as e:
        print(f"trackpipe {args.command}: error: {e}", file=sys.stderr)
        return 2
