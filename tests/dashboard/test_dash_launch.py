"""The launcher `python -m dashboard`: started from another directory it still applies the
project's config, so the server listens on 127.0.0.1 only."""

from __future__ import annotations

import pytest

import os
import socket
import subprocess
import sys
import time
import urllib.request

from dash_helpers import ROOT


def listening(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp writes them) listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, hexport = local.split(":")
                if state == "0A" and int(hexport, 16) == port:  # 0A = LISTEN
                    found.add(addr)
    return found


@pytest.mark.slow
def test_started_from_elsewhere_it_listens_on_loopback_only(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboard", "--server.port", str(port)],
        cwd=tmp_path,  # not the repository root
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as r:
                    assert r.read() == b"ok"
                break
            except OSError:
                assert proc.poll() is None, "the dashboard did not start"
                assert time.monotonic() < deadline, "the dashboard did not answer in 60 s"
                time.sleep(0.5)
        assert listening(port) == {"0100007F"}  # 127.0.0.1, nothing else
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_config_hides_errors_and_keeps_xsrf_on():
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["client"]["showErrorDetails"] == "none"
    assert cfg["server"]["maxUploadSize"] <= 50


def test_the_served_app_never_reloads_its_code_under_running_sessions():
    """Found by scripts/load_visitors.py (issue 18): with Streamlit's file watcher, a file changed
    on disk during a class dropped the dashboard's modules from the live server: the job table
    went with them (every running job then read "interrupted (no result on disk)") and pages
    failed on half-reloaded imports."""
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["fileWatcherType"] == "none" and cfg["server"]["runOnSave"] is False
