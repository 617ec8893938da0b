"""One tiny run (digits, 2 epochs, 2 gold seeds) produced once per session through the job
backend into a temporary TMU_HOME; the AppTests, plots and service tests read it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dash_helpers import ROOT, TINY_ENV, tiny_state  # noqa: E402

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def tmu_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("tmu_home")
    os.environ.update(TMU_HOME=str(home), **TINY_ENV)
    return home


@pytest.fixture(scope="session")
def tiny_run(tmu_home) -> Path:
    """The finished run folder of the tiny job (run end to end through LocalBackend)."""
    from dashboard import service

    state = tiny_state()
    job_id, error = service.submit_run(state, service.backend(tmu_home))
    assert error is None
    job = service.backend(tmu_home).wait(job_id, timeout=240)
    assert job.state == "done", job.error
    return Path(job.out_dir)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "browser: drives the real app in Chromium (runs by default when "
        "/usr/bin/chromium exists; TMU_REQUIRE_BROWSER=1 makes its absence a failure)",
    )
