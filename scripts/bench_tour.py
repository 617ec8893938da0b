"""Benchmark the Tour of a prepared lesson: `python -m tmu prepare` fills a store, then the real
app (`streamlit run`) is driven in Chromium.

Measures (1) a link opened in a fresh browser tab → the Tour's last chart visible; (2) a click
in the Tour (the seed set to another prepared one) → the new run's last chart visible; (3) the
server's own script time of each Tour render (`TMU_RENDER_LOG=1`). Median and max over
--repeats.

    .venv/bin/python scripts/bench_tour.py --scenario memorised-mislabels --seeds 0,1 \
        [--repeats 5] [--json docs/bench-tour.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "dashboard"))
from dash_browser import browser_page, idle, streamlit_app  # noqa: E402

LAST = "7. The result"


def last_chart(page) -> None:
    """Wait for the Tour's last step and its charts, and the script to finish."""
    page.get_by_text(LAST, exact=True).wait_for(timeout=120_000)
    page.locator(".js-plotly-plot").last.wait_for(timeout=60_000)
    idle(page)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "max": max(values), "runs": len(values)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="memorised-mislabels")
    ap.add_argument("--seeds", default="0,1", help="two prepared seeds to switch between")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--store", type=Path, help="a prepared store (default: prepare a fresh one)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")][:2]
    home = args.store or Path(tempfile.mkdtemp(prefix="tmu_tour_"))
    env = {"TMU_HOME": str(home), "TMU_RENDER_LOG": "1", "TMU_DASHBOARD_PROFILE": "full"}
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores"}
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "tmu", "prepare", "--scenario", args.scenario, "--seeds"]
    subprocess.run(cmd + [args.seeds], cwd=ROOT, env={**os.environ, **env}, check=True)
    results["prepare_s"] = time.perf_counter() - start
    log = home / "streamlit.log"
    opened, clicked = [], []
    with streamlit_app(env, log) as (url, _):
        link = f"{url}/tour?scenario={args.scenario}&seed={seeds[0]}"
        for _ in range(args.repeats):
            with browser_page() as page:
                t = time.perf_counter()
                page.goto(link)
                last_chart(page)
                opened.append(time.perf_counter() - t)
                seed = page.get_by_label("Seed")
                for s in (seeds[1], seeds[0]):
                    t = time.perf_counter()
                    seed.fill(str(s))
                    seed.press("Enter")
                    page.wait_for_function(
                        f"() => window.location.search.includes('seed={s}')", timeout=30_000
                    )
                    last_chart(page)
                    clicked.append(time.perf_counter() - t)
    renders = [float(m) for m in re.findall(r"render Tour ([0-9.]+)", log.read_text())]
    results |= {
        "link_to_last_chart_s": summary(opened),
        "click_to_last_chart_s": summary(clicked),
        "server_render_s": summary(renders),
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
