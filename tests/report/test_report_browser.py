"""The HTML report of a tiny run, opened as a person would: in a real (headless) Chromium.

A tiny workflow (a REDVID and a TrackML-like dataset, helix-dbscan, no training) runs end to end, then
``snakemake --report`` writes ``results/report.html``. The test checks that every table and figure the
run wrote is listed in the report's categories, that the report's app renders its sections in the
browser (sidebar "Figures" and "Tables"), that every embedded figure decodes into an image Chromium
draws with the PNG's own size (no broken image) and every table is non-empty text, and it keeps a
screenshot (``TRACKPIPE_REPORT_SCREENSHOT`` names where; default the test's tmp dir).

Skipped, with the reason, where no Chromium is installed (Debian: ``apt-get install chromium``; or set
``TRACKPIPE_CHROMIUM`` to the browser's path). Slow (~35 s: the whole tiny workflow and the report).
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

TINY_RUN = {
    "seed": 3,
    "datasets": {
        "lin": {"kind": "redvid", "events": 12, "seed": 1, "split": [0.5, 0.25, 0.25], "plots": False,
                "redvid": {"track_types": ["linear"], "n_tracks": [5, 10]}},
        "tml": {"kind": "trackml", "events": 6, "seed": 201, "split": [2, 2, 2], "plots": False,
                "trackml": {"volumes": [7, 8, 9]},
                "reduce": {"volumes": [7, 8, 9], "n_particles": [10, 50], "repeats": 2, "noise": "proportional"}},
    },
    "models": {"helix-dbscan": {"family": "helix-dbscan", "datasets": ["lin", "tml"], "gpu": False}},
    "evaluate": {"bootstrap": 20},
    "reference_trackml": None,
}


def chromium() -> str | None:
    explicit = os.environ.get("TRACKPIPE_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run_browser(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
           "--virtual-time-budget=5000", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}"
    return proc


def report_objects(text: str) -> tuple[dict, dict]:
    """The report's embedded `results` and `categories` objects (Snakemake 9 report layout)."""
    found = {}
    for name in ("results", "categories"):
        m = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', text, re.S)
        assert m, f"report.html has no <script id={name!r}> (Snakemake report layout changed?)"
        found[name] = json.loads(m.group(1))
    return found["results"], found["categories"]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def decode(uri: str) -> bytes:
    head, _, payload = uri.partition(",")
    assert head.endswith(";base64"), head[:80]
    return base64.b64decode(payload)


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    exe = chromium()
    if exe is None:
        pytest.skip("headless Chromium is not installed (Debian package 'chromium', or set TRACKPIPE_CHROMIUM): "
                    "the HTML report cannot be checked in a browser here")
    work = tmp_path_factory.mktemp("tiny_run")
    for name in ("Snakefile", "workflow", "profiles", "config"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(TINY_RUN))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    for args in (["--cores", "2"], ["--report", "results/report.html"]):
        proc = subprocess.run([SNAKEMAKE, *args], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{proc.stderr[-4000:]}"
    return exe, work


@pytest.mark.slow
def test_report_lists_and_loads_every_table_and_figure(tiny_report, tmp_path):
    exe, work = tiny_report
    results_dir = work / "results"
    report = results_dir / "report.html"
    results, categories = report_objects(report.read_text())

    # Every table and figure the run wrote is listed, in its category, and no category is empty.
    figures = {f"results/figures/{p.name}" for p in (results_dir / "figures").glob("*.png")}
    tables = {f"results/tables/{p.name}" for p in (results_dir / "tables").glob("table*.*")}
    assert {"results/figures/fig4_tml.png", "results/figures/fig6.png"} <= figures
    assert {f"results/tables/table{i}.{e}" for i in (1, 2) for e in ("csv", "md", "tex")} <= tables
    listed = {c: {p for group in sub.values() for p in group} for c, sub in categories.items()}
    assert listed["Figures"] == figures and listed["Tables"] == tables
    assert set(results) == figures | tables

    # Tables: the embedded text is the file's, and not empty (a header and at least one data row).
    for key in tables:
        data = decode(results[key]["data_uri"])
        assert data == (work / key).read_bytes() and data.strip(), key
        if key.endswith(".md"):
            assert sum(line.startswith("|") for line in data.decode().splitlines()) >= 3, key

    # The report's app renders its sections in the browser (not only the "enable Javascript" notice).
    dom = run_browser(exe, tmp_path / "profile", "--dump-dom", report.as_uri()).stdout
    visible = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S))
    for section in ("Figures", "Tables", "Workflow"):
        assert re.search(rf"\b{section}\b", visible), f"section {section} is not rendered"

    # Figures: every embedded image, exactly as the report embeds it, is drawn by Chromium at the PNG's size.
    names = sorted(figures)
    imgs = "\n".join(f'<img id="f{i}" src="{html.escape(results[k]["data_uri"])}">' for i, k in enumerate(names))
    page = tmp_path / "images.html"
    page.write_text(f"""<!doctype html><html><body>{imgs}<pre id="status">pending</pre><script>
window.addEventListener("load", () => {{
  const out = [...document.images].map(im => `${{im.id}} ${{im.complete}} ${{im.naturalWidth}} ${{im.naturalHeight}}`);
  document.getElementById("status").textContent = "done\\n" + out.join("\\n");
}});
</script></body></html>""")
    status = re.search(r'<pre id="status">(.*?)</pre>', run_browser(exe, tmp_path / "profile", "--dump-dom",
                                                                    page.as_uri()).stdout, re.S).group(1)
    lines = status.split("\n")
    assert lines[0] == "done", status[:200]
    drawn = {int(f[1:]): (c, int(w), int(h)) for f, c, w, h in (line.split() for line in lines[1:])}
    for i, key in enumerate(names):
        width, height = png_size((work / key).read_bytes())
        assert drawn[i] == ("true", width, height), f"{key} is a broken image in the browser: {drawn[i]}"

    # A screenshot of the report as it opens, kept for a person to look at; it is not blank.
    shot = Path(os.environ.get("TRACKPIPE_REPORT_SCREENSHOT", tmp_path / "report.png"))
    shot.parent.mkdir(parents=True, exist_ok=True)
    run_browser(exe, tmp_path / "profile", "--window-size=1400,1000", f"--screenshot={shot}", report.as_uri())
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1000, 1400) and pixels.std() > 0.02
