"""scripts/load_visitors.py, small: three browser tabs ask for the same forget set at once; each
gets its own result from one shared job, and no tab sees an error. (Its timings are benchmark
figures, docs/benchmarks.md §10, never asserted here.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dash_browser import CHROMIUM
from dash_helpers import ROOT

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    if os.environ.get("TMU_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)


def test_three_tabs_one_shared_job(tmp_path):
    out = tmp_path / "load.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "load_visitors.py"), "--visitors", "3"]
    cmd += ["--groups", "1", "--arrive", "1", "--timeout", "400", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.is_file(), proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [v["outcome"] for v in result["per_visitor"]] == ["Done"] * 3, proc.stderr[-3000:]
    assert all(v["shows_own_run"] for v in result["per_visitor"])
    assert result["run_jobs"] == 1  # three identical requests, one job
    assert result["visitors_with_errors"] == 0, [v["errors"] for v in result["per_visitor"]]
    assert result["targets"]["identical jobs run once"]
    assert result["render_s"]["all"]["n"] == 3 * 5  # five timed steps per visitor
    assert result["server_script_s"]["all"]["n"] >= 3 * 4
