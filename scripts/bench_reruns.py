"""What one rerun of each dashboard page costs the server: AppTest drives the real app over a tiny
finished run (digits, the quick profile), opens each page, then reruns it and times that rerun
(the cost of every later click on the page). `--profile` prints the repository's functions that
took the rerun's time (cProfile around the page script, which AppTest runs on its own thread).

    .venv/bin/python scripts/bench_reruns.py [--home DIR] [--pages alignment,compare] [--profile]

Without `--home` a fresh store is used and the tiny run is trained first (about a minute).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "dashboard")]
PAGES = ["data", "tour", "forget", "run", "alignment", "inspect", "attributions", "compare"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", help="a store holding a finished tiny run (default: a fresh one)")
    ap.add_argument("--pages", default=",".join(PAGES))
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    home = args.home or tempfile.mkdtemp(prefix="tmu_reruns_")

    from dash_helpers import TINY_ENV, tiny_state

    os.environ.update(TMU_HOME=home, **TINY_ENV)
    from dashboard import service

    be = service.backend(home)
    if not service.finished_runs(be):
        job_id, error = service.submit_run(tiny_state(), be)
        if error:
            raise SystemExit(error)
        print(f"tiny run: {be.wait(job_id, timeout=600).state}")

    from streamlit.navigation.page import StreamlitPage
    from streamlit.testing.v1 import AppTest

    profiler: list[cProfile.Profile | None] = [None]
    run = StreamlitPage.run

    def profiled(self):
        if profiler[0] is None:
            return run(self)
        profiler[0].enable()
        try:
            return run(self)
        finally:
            profiler[0].disable()

    StreamlitPage.run = profiled
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    for page in args.pages.split(","):
        at.switch_page(f"views/{page}.py")
        start = time.perf_counter()
        at.run()
        first = time.perf_counter() - start
        profiler[0] = cProfile.Profile()
        start = time.perf_counter()
        at.run()
        again = time.perf_counter() - start
        stats, profiler[0] = profiler[0], None
        errors = [e.value for e in at.exception]
        failed = f" {errors}" if errors else ""
        print(f"{page}: first {first:.2f} s, rerun {again:.2f} s{failed}")
        if args.profile:
            out = io.StringIO()
            pstats.Stats(stats, stream=out).sort_stats("cumulative").print_stats(60)
            print("\n".join(ln for ln in out.getvalue().splitlines() if str(ROOT) in ln))
    return 0


if __name__ == "__main__":
    sys.exit(main())
