# Thin wrapper: `trackpipe bench` with this workflow's bench section, into results/bench/.
import json
import sys
import tempfile
from pathlib import Path

from trackpipe.runtime import configure_threads, log_to_file

configure_threads(snakemake.threads)
log_to_file(snakemake.log[0])

from trackpipe.cli import main  # noqa: E402

section = dict(snakemake.params.section)
quick = section.pop("quick", True)
with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    json.dump(section.get("scaling", {}), f)
args = ["bench", "--out", str(Path(snakemake.output.scaling).parent), "--threads", str(snakemake.threads),
        "--config", f.name] + (["--quick"] if quick else [])
sys.exit(main(args))
