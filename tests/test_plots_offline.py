"""`dvc plots show` works without a network: every declared plot draws in a real headless browser.

The page comes from the repository's template (plots/offline.html, set as ``plots.html_template`` in
.dvc/config) with vega, vega-lite and vega-embed inside it; DVC's own page would fetch them from a
CDN and draw nothing offline. The test renders the committed results with `dvc plots show`, opens
``dvc_plots/index.html`` in Debian's Chromium driven by Playwright with every non-file request
aborted, and checks each declared plot: drawn (a canvas with ink, an image that loaded), no
console error, no request leaving the machine, a title that is not a file path, axis titles with
their units and no smoothing slider.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL = ("install Debian's browser (`apt-get install chromium`) and Playwright (`pip install -e .[dev]`, "
           "as .ci/run does)")


def _browser() -> str:
    explicit = os.environ.get("GENREID_CHROMIUM")
    found = explicit or next((p for p in map(shutil.which, BROWSERS) if p), None)
    if not found:
        pytest.skip(f"no Chromium on this machine ({', '.join(BROWSERS)} not on PATH, GENREID_CHROMIUM unset): "
                    f"{INSTALL}")
    return found


def _dvc(*args: str, out: Path) -> subprocess.CompletedProcess:
    dvc = Path(sys.executable).with_name("dvc")
    return subprocess.run([str(dvc), "plots", "show", *args, "-o", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def _declared(tmp_path: Path) -> dict[str, str]:
    """Every plot dvc.yaml declares, as DVC resolves it for the workspace: path -> vega | image."""
    proc = _dvc("--json", out=tmp_path / "json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    missing = [f"{e['name']} ({e['type']})" for e in shown.get("errors", [])]
    assert not missing, (f"plots declared in dvc.yaml that DVC cannot load from the workspace: {missing}; "
                         "run `dvc repro` and commit results/")
    return {path: entries[0]["type"] for path, entries in shown["data"].items()}


# Ink on a canvas: pixels that are not the white background.
INK = """el => { const c = el.querySelector('canvas'); if (!c || !c.width) return 0;
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
  for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 0 && (px[i] < 240 || px[i + 1] < 240 || px[i + 2] < 240)) n++;
  return n; }"""


def _encodings(spec: dict) -> dict:
    return (spec.get("spec") or spec).get("encoding", {})


def test_every_declared_plot_renders_offline(tmp_path):
    executable = _browser()
    sync_api = pytest.importorskip("playwright.sync_api", reason=f"Playwright is not installed: {INSTALL}")
    declared = _declared(tmp_path)
    vega = sorted(p for p, kind in declared.items() if kind == "vega")
    images = sorted(p for p, kind in declared.items() if kind == "image")
    assert len(vega) >= 6 and images, declared  # per-method CMC curves, the report's figures, pictures

    proc = _dvc(out=tmp_path / "dvc_plots")
    assert proc.returncode == 0, proc.stderr
    page_html = (tmp_path / "dvc_plots" / "index.html").read_text()
    assert "cdn.jsdelivr" not in page_html and "<script src=" not in page_html

    errors: list[str] = []
    left_machine: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            def offline(route):
                if route.request.url.startswith(("file:", "data:", "blob:")):
                    route.continue_()
                else:
                    left_machine.append(route.request.url)
                    route.abort()

            page.route("**/*", offline)
            page.goto((tmp_path / "dvc_plots" / "index.html").as_uri())
            outcomes = page.evaluate("Promise.all(window.genreidPlots)")
            ink = {o["id"]: page.eval_on_selector(o["id"], INK) for o in outcomes}
            loaded = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.src, i.complete && i.naturalWidth])")
        finally:
            browser.close()

    assert not left_machine, f"the page tried to reach the network: {left_machine}"
    assert not errors, errors
    failed = [o for o in outcomes if not o["ok"]]
    assert not failed, failed
    assert len(outcomes) == len(vega), (len(outcomes), vega)
    blank = [i for i, n in ink.items() if n < 2000]
    assert not blank, f"plots drawn without ink: {blank}"
    assert len(loaded) == len(images) and all(width for _, width in loaded), loaded
    for outcome in outcomes:
        spec = outcome["spec"]
        title = spec.get("title")
        title = title.get("text") if isinstance(title, dict) else title
        assert title and "/" not in title and not title.endswith(".csv"), (outcome["id"], title)
        x, y = _encodings(spec)["x"], _encodings(spec)["y"]
        assert x.get("title") and y.get("title"), (outcome["id"], x, y)
        assert "smooth" not in json.dumps(spec.get("params", [])), f"{outcome['id']} offers smoothing"
        if "CMC" in title:
            assert "(%)" in y["title"] and y["scale"]["domain"] == [0, 100], (title, y)
            assert (spec.get("spec") or spec)["mark"]["interpolate"] == "step-after", title
