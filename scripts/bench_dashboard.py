"""Benchmark the real dashboard: `streamlit run` driven by Playwright in Chromium.

Measures (1) cold: from clicking Run with the default settings (empty TMU_HOME) to the Alignment
chart being visible; (2) the render time of every page of the finished run (click in the sidebar
to the page's last element drawn and the script idle; median and max of --repeats); (3) the peak
RSS of the streamlit process (VmHWM from /proc), and the peak of the sum over the streamlit process
and its descendants (the job worker), sampled every 0.2 s. Optionally saves a screenshot of each
page.

    .venv/bin/python scripts/bench_dashboard.py [--screenshots assets] [--repeats 3] \
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "dashboard"))
from dash_browser import PAGES, browser_page, goto_page, idle, streamlit_app  # noqa: E402

MARKERS = {
    "Data": ".js-plotly-plot",
    "Tour": ".js-plotly-plot",
    "Forget set": "[data-testid='stAlert']",
    "Run": "[data-testid='stButton']",
    "Alignment": ".js-plotly-plot",
    "Inspect": ".js-plotly-plot:visible",
    "Attributions": ".js-plotly-plot",
    "Compare": ".js-plotly-plot",
}


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a process (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tree_rss_mb(pid: int) -> float:
    """Current RSS of a process and all its descendants (the job worker included), in MB."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += (
                next(
                    int(line.split()[1])
                    for line in Path(f"/proc/{p}/status").read_text().splitlines()
                    if line.startswith("VmRSS:")
                )
                / 1024
            )
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total


class TreeRssSampler(threading.Thread):
    """Samples tree_rss_mb every 0.2 s; .peak is the largest sum seen (the app's memory)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.peak = max(self.peak, tree_rss_mb(self.pid))


def render(page, title: str) -> float:
    start = time.perf_counter()
    goto_page(page, title)
    page.locator(MARKERS[title]).last.wait_for(timeout=30_000)
    idle(page)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--screenshots", type=Path, help="save assets/page-<name>.png here")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="tmu_bench_"))
    env = {
        "TMU_HOME": str(home),
        "TMU_DASHBOARD_PROFILE": "full",
        "TMU_DASHBOARD_DATASET": "mnist5k",
    }
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "store": str(home),
    }
    with streamlit_app(env, home / "streamlit.log") as (url, proc), browser_page() as page:
        sampler = TreeRssSampler(proc.pid)
        sampler.start()
        t = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("h1", timeout=60_000)
        idle(page, 60_000)
        results["first_load_s"] = time.perf_counter() - t
        goto_page(page, "Run")
        idle(page)
        start = time.perf_counter()
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text("Done", exact=True).wait_for(timeout=600_000)
        results["run_to_done_s"] = time.perf_counter() - start
        goto_page(page, "Alignment")
        page.locator(".js-plotly-plot", has_text="Per-class accuracy").first.wait_for(
            timeout=60_000
        )
        results["cold_run_to_alignment_chart_s"] = time.perf_counter() - start
        idle(page)
        times: dict[str, list[float]] = {p: [] for p in PAGES}
        for _ in range(args.repeats):
            for title in PAGES:
                times[title].append(render(page, title))
        results["page_render_s"] = {
            p: {"median": statistics.median(v), "max": max(v)} for p, v in times.items()
        }
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
            for title, slug in PAGES.items():
                render(page, title)
                page.wait_for_timeout(800)
                page.screenshot(path=str(args.screenshots / f"page-{slug}.png"), full_page=True)
        results["peak_rss_mb"] = peak_rss_mb(proc.pid)
        sampler.stop.set()
        results["peak_rss_app_and_worker_mb"] = sampler.peak
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
