"""House rule 1: pages and ui never load TensorFlow; it loads only when an action needs it.

Checked in a fresh interpreter, since this test process may already hold TensorFlow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.app.support import ROOT

from ui import nav

PROBE = r"""
import ast, importlib, json, pathlib, sys, time
started = time.perf_counter()
root = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(root))

# Every module that app.py, pages/ and ui/ import anywhere (functions included).
names = set()
for path in [root / "app.py", *root.glob("pages/*.py"), *root.glob("ui/*.py")]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
imported = []
for name in sorted(names):
    try:
        importlib.import_module(name)
        imported.append(name)
    except ModuleNotFoundError:
        pass  # "from module import function": the module itself is imported above

# Then draw every page, as a visitor clicking through without doing anything.
from streamlit.testing.v1 import AppTest
from ui import nav
at = AppTest.from_file(str(root / "app.py"), default_timeout=60).run()
first_page_seconds = time.perf_counter() - started
errors, drawn = [], []
for page in nav.PAGES:
    at.switch_page(page.path).run()
    errors += [f"{page.path}: {e.value}" for e in at.exception]
    drawn.append(at.title[0].value if at.title else None)
print(json.dumps({"heavy": sorted(m for m in ("tensorflow", "keras") if m in sys.modules),
                  "imported": imported, "errors": errors, "drawn": drawn,
                  "first_page_seconds": first_page_seconds}))
"""


def test_pages_and_ui_never_import_tensorflow(tmp_path):
    env = {**os.environ, "QUASAR_RUNS_DIR": str(tmp_path / "runs")}
    result = subprocess.run([sys.executable, "-c", PROBE, str(ROOT)], capture_output=True, text=True, env=env,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"ui.state", "ui.layout", "ui.job_control", "ui.resources", "quasar_core.jobs", "ui.comparing",
            "ui.explaining", "ui.predicting", "ui.checking", "ui.workspace", "ui.nav", "ui.settings_form",
            "ui.uploads", "quasar_core.runs.report", "quasar_core.runs.learned", "quasar_core.photo_check",
            "quasar_core.predicting", "quasar_core.insights", "quasar_core.charts"} <= set(report["imported"])
    assert report["errors"] == []
    assert report["drawn"] == ["Quasar Nexus", *(page.title for page in nav.PAGES[1:])]
    assert nav.COMPARE.title in report["drawn"] and nav.CHECK.title in report["drawn"]  # without TensorFlow
    assert report["heavy"] == [], f"TensorFlow was imported by: {report['imported']}"
    # The first page is drawn well before TensorFlow could even load (~3 s budget in a browser).
    assert report["first_page_seconds"] < 3.0 * 2  # doubled: shared CI machines are slower
