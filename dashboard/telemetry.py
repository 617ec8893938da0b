"""Diagnostics for load tests (`TMU_RENDER_LOG=1`, read by scripts/load_visitors.py): one log line
per full script run (`render PAGE SECONDS session=ID cpu=SECONDS`), per websocket session
connected or disconnected (`ws connect ID` / `ws disconnect ID`, a reconnect names the session it
resumes) and per job a tab submits (`submit KIND JOB visitor=V`, logged by the service). Off by
default: the lines go to the server's log (stderr) through the `dashboard.events` logger."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("dashboard.events")


def enabled() -> bool:
    return os.environ.get("TMU_RENDER_LOG") == "1"


def install() -> None:
    """Send `dashboard.events` to stderr and log websocket sessions; idempotent (app.py calls it
    on every rerun)."""
    if getattr(log, "_tmu_installed", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    from streamlit.runtime.runtime import Runtime

    connect, disconnect = Runtime.connect_session, Runtime.disconnect_session

    def connect_session(self, *args, **kwargs):
        session = connect(self, *args, **kwargs)
        resumed = kwargs.get("existing_session_id")
        log.info("ws connect %s%s", session, f" (resumes {resumed})" if resumed else "")
        return session

    def disconnect_session(self, session_id, *args, **kwargs):
        log.info("ws disconnect %s", session_id)
        return disconnect(self, session_id, *args, **kwargs)

    Runtime.connect_session, Runtime.disconnect_session = connect_session, disconnect_session
    log._tmu_installed = True


def render(page: str, seconds: float, cpu: float) -> None:
    """Log one full script run of `page` in this session: its wall time and the CPU time of its
    thread (what the server itself spent; the rest was waiting for a core, e.g. behind browsers
    on the same machine)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    session = ctx.session_id if ctx else "-"
    log.info("render %s %.4f session=%s cpu=%.4f", page, seconds, session, cpu)
