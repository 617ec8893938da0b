"""Start the real app (`streamlit run`) on 127.0.0.1 and drive it with Playwright in Debian's
Chromium; shared by the browser test and scripts/bench_dashboard.py."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("TMU_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
PAGES = {
    "Data": "data",
    "Tour": "tour",
    "Forget set": "forget",
    "Run": "run",
    "Alignment": "alignment",
    "Inspect": "inspect",
    "Attributions": "attributions",
    "Compare": "compare",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_app(env: dict[str, str], log: Path | None = None):
    """Yield (url, process) of `streamlit run dashboard/app.py` with extra `env`."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "dashboard" / "app.py"),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start (exit {proc.poll()})")
                time.sleep(0.3)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()


@contextmanager
def browser_page(width: int = 1400, height: int = 1000):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def idle(page, timeout: float = 30_000) -> None:
    """Wait until Streamlit's script has finished (no 'running' status widget)."""
    page.wait_for_timeout(150)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout
    )


def goto_page(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.wait_for_function(
        "() => document.querySelector('h1') && "
        f"document.querySelector('h1').innerText.startsWith({title!r})",
        timeout=30_000,
    )


def lasso(page, plot, frac: float = 0.35) -> None:
    """Draw a lasso polygon (an octagon covering the middle of the plot area) on a plotly chart."""
    box = plot.locator(".nsewdrag").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    rx, ry = box["width"] * frac, box["height"] * frac
    import math

    pts = [
        (cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in [i * math.pi / 8 for i in range(17)]
    ]
    page.mouse.move(*pts[0])
    page.mouse.down()
    for x, y in pts[1:]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()


OUTCOME = re.compile(r"^(Done|Cancelled\.|The job failed|The forget set is invalid|invalid)")


def run_job(page, log: Path | None = None, timeout: float = 420_000) -> str:
    """Click the Run page's Run button until a job shows progress (a click that lands while the
    page is still rerunning can be dropped), then wait for the outcome; its alert text. A timeout
    fails with what the page and the server log said, so a slow CI machine is told apart from a
    job that failed or never started."""
    button = page.get_by_role("button", name="Run", exact=True)
    started = page.locator("[data-testid='stProgress'], [data-testid='stAlert']").filter(
        has_text=re.compile(r"running|queued|waiting|Done|failed|Cancelled|invalid")
    )
    try:
        for attempt in range(3):
            button.click()
            try:
                started.first.wait_for(timeout=30_000)
                break
            except PlaywrightTimeout:
                if attempt == 2:
                    raise
        alert = page.locator("[data-testid='stAlert']").filter(has_text=OUTCOME).first
        alert.wait_for(timeout=timeout)
        return alert.inner_text().strip()
    except PlaywrightTimeout as err:
        body = page.locator("body").inner_text()[-2000:]
        tail = "\n".join(log.read_text().splitlines()[-40:]) if log and log.exists() else ""
        raise AssertionError(f"{err}\n--- page ---\n{body}\n--- server log ---\n{tail}") from None
