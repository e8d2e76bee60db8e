"""Build plots/offline.html: DVC's plots page with vega, vega-lite and vega-embed inside it.

DVC's own page loads the three libraries from a CDN, so `dvc plots show` draws nothing without a
network (air-gapped GPU nodes, a laptop on a train). `.dvc/config` points ``plots.html_template`` at
the page this script writes; it has DVC's ``{plot_divs}`` placeholder and no ``{scripts}`` one, so
DVC adds no CDN tags. The libraries come from their npm packages at the pinned versions below:

    cd /tmp && npm pack vega@5.33.1 vega-lite@5.23.0 vega-embed@6.29.0
    python scripts/build_plots_template.py /tmp/vega-5.33.1.tgz /tmp/vega-lite-5.23.0.tgz \\
        /tmp/vega-embed-6.29.0.tgz

Each library's licence goes to plots/licenses/ (the vega package ships none: its package.json
declares BSD-3-Clause, the licence of the whole Vega project, whose text the vega-lite package
carries; the same copyright holder).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "plots" / "offline.html"
LICENSES = ROOT / "plots" / "licenses"
# package -> the browser build that defines its global (vega, vegaLite, vegaEmbed)
BUILDS = {"vega": "package/build/vega.min.js", "vega-lite": "package/build/vega-lite.min.js",
          "vega-embed": "package/build/vega-embed.min.js"}
PINNED = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
SOURCE_MAP = re.compile(r"\n?//# sourceMappingURL=\S+\s*$")

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {{refresh_tag}}
    <title>genreid plots</title>
    <!-- Offline page for `dvc plots show/diff` (scripts/build_plots_template.py):
{versions}
         BSD-3-Clause, licences in plots/licenses/. No placeholder for scripts: DVC adds no CDN tags. -->
{scripts}
    <script>
    /* Each plot reports its outcome: a visible message in its place when it cannot be drawn (instead
       of an empty gap), and window.genreidPlots, one promise per plot, for the browser test. */
    (function () {{
        var embed = window.vegaEmbed;
        window.genreidPlots = [];
        window.vegaEmbed = function (el, spec, opts) {{
            var outcome = embed(el, spec, opts).then(function (result) {{
                return {{id: el, ok: true, spec: spec}};
            }}, function (err) {{
                var div = document.querySelector(el), note = document.createElement("p");
                note.textContent = "This plot could not be drawn: " + err;
                note.style.color = "#b00020";
                if (div) {{ div.appendChild(note); }}
                console.error("plot " + el + ": " + err);
                return {{id: el, ok: false, error: String(err)}};
            }});
            window.genreidPlots.push(outcome);
            return outcome;
        }};
    }})();
    </script>
    <style>
        body {{ font-family: sans-serif; margin: 16px; }}
        body > div {{ margin-bottom: 28px; }}
        table {{ border-spacing: 15px; }}
        img {{ max-width: 100%; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def read_package(tgz: Path) -> tuple[str, str, str, bytes | None]:
    """(name, version, minified browser build, LICENSE bytes or None) of an ``npm pack`` tarball."""
    with tarfile.open(tgz) as tar:
        meta = json.loads(tar.extractfile("package/package.json").read())
        name = meta["name"]
        if name not in BUILDS:
            raise SystemExit(f"{tgz}: package {name!r} is none of {sorted(BUILDS)}")
        code = tar.extractfile(BUILDS[name]).read().decode("utf-8")
        try:
            licence = tar.extractfile("package/LICENSE").read()
        except KeyError:
            licence = None
    return name, meta["version"], code, licence


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tarballs", nargs=3, type=Path, help="the npm pack tarballs of vega, vega-lite and vega-embed")
    args = p.parse_args(argv)
    packages = {}
    for tgz in args.tarballs:
        name, version, code, licence = read_package(tgz)
        if version != PINNED[name]:
            raise SystemExit(f"{tgz}: {name} {version}, the page pins {PINNED[name]}")
        digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
        if "</script" in code.lower() or "<!--" in code:
            raise SystemExit(f"{name}: the build contains '</script' or '<!--' and cannot be inlined")
        packages[name] = (version, SOURCE_MAP.sub("", code), licence, digest)
    if packages["vega"][2] is None:  # the vega package ships no LICENSE: the project's text, same holder
        packages["vega"] = (*packages["vega"][:2], packages["vega-lite"][2], packages["vega"][3])
    versions = "\n".join(f"         {n}@{v[0]} (npm tarball sha256 {v[3]})" for n, v in packages.items())
    scripts = "\n".join(f"    <script>/* {n}@{v[0]} */\n{v[1]}\n    </script>" for n, v in packages.items())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(PAGE.format(versions=versions, scripts=scripts), encoding="utf-8")
    LICENSES.mkdir(parents=True, exist_ok=True)
    for name, (_, _, licence, _) in packages.items():
        (LICENSES / f"{name}.LICENSE").write_bytes(licence)
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size // 1024} KiB) and {LICENSES.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
