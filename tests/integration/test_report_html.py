"""report.html opens offline in headless Chromium and every embedded figure loads.

The report is that of the session's default-style ``skewlab run`` (tests/conftest.py
``default_style_run``, checked end to end by tests/e2e/test_run.py), whose analysis draws every
figure: rendering them once more on synthetic traces cost ~3 s.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from skewlab.store import ResultsDir
from tests.conftest import require_command
from tests.e2e.test_run import _results_dir

CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const ext = Array.from(document.querySelectorAll('[src],[href]')).filter(
    e => !/^(data:|#)/.test(e.getAttribute('src') || e.getAttribute('href') || '#')).length;
  const d = document.createElement('div');
  d.id = 'skewlab-check';
  d.textContent = `IMAGES ${ok}/${imgs.length} EXTERNAL ${ext}`;
  document.body.appendChild(d);
});
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        try:
            return require_command(name, "renders report.html headless")
        except BaseException:
            if name == "chromium-browser":
                raise
    raise AssertionError("unreachable")


def test_report_html_renders_every_figure(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from skewlab.analysis.figures import FIGURES  # here: matplotlib only where it is needed

    exe = _chromium()  # before the run: without chromium (outside CI) this skips at once
    p, out = request.getfixturevalue("default_style_run")
    assert p.returncode == 0, p.stderr
    res = ResultsDir(_results_dir(out))
    stats = json.loads(res.stats_path.read_text())
    for name in FIGURES:
        for ext in ("png", "svg"):
            assert f"figures/{name}.{ext}" in stats["figures"]
            assert (res.root / "figures" / f"{name}.{ext}").stat().st_size > 0
    html = (res.root / "report.html").read_text()
    n_figs = html.count("<img ")
    assert n_figs >= len(FIGURES)
    page = tmp_path / "page.html"
    page.write_text(html.replace("</body>", CHECK + "</body>"))
    profile = tmp_path / "profile"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}",
           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    m = re.search(r"IMAGES (\d+)/(\d+) EXTERNAL (\d+)", p.stdout)
    assert m, f"check did not run (rc {p.returncode}): {p.stderr[-2000:]}"
    ok, total, external = map(int, m.groups())
    assert total == n_figs and ok == total, f"{ok}/{total} figures loaded"
    assert external == 0  # self-contained: nothing fetched from outside the page
