"""The load-test diagnostics (dashboard.telemetry, TMU_RENDER_LOG=1): the lines
scripts/load_visitors.py reads."""

from __future__ import annotations

import logging
import re
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "scripts"))


def test_telemetry_lines_are_the_ones_the_load_test_reads(monkeypatch, tmp_path, caplog):
    from dashboard import telemetry
    from streamlit.runtime.runtime import Runtime

    monkeypatch.setattr(Runtime, "connect_session", Runtime.connect_session)
    monkeypatch.setattr(Runtime, "disconnect_session", Runtime.disconnect_session)
    monkeypatch.setattr(telemetry.log, "handlers", [])
    monkeypatch.setattr(telemetry.log, "_tmu_installed", False, raising=False)
    monkeypatch.setenv("TMU_RENDER_LOG", "1")
    assert telemetry.enabled()
    telemetry.install()
    telemetry.install()  # every rerun calls it: one handler, one wrapper
    assert len(telemetry.log.handlers) == 1
    assert Runtime.connect_session.__name__ == "connect_session"
    log = tmp_path / "streamlit.log"
    telemetry.log.handlers[0].stream = open(log, "w")  # noqa: SIM115 (closed below)
    telemetry.render("Alignment", 0.25, 0.125)
    logging.getLogger("dashboard.events").info("submit run abc visitor=v1")
    telemetry.log.handlers[0].stream.close()
    import load_visitors

    assert load_visitors.server_renders(log, 0) == [("Alignment", 0.25)]
    assert load_visitors.server_cpu(log, 0) == [0.125]
    assert load_visitors.server_events(log, 0)["submit_run"] == 1
    assert re.search(r"render Alignment 0\.2500 session=- cpu=0\.1250$", log.read_text(), re.M)
