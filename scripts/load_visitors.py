"""A classroom on one server: N concurrent visitors drive the real dashboard in Chromium.

Starts the app on 127.0.0.1 (a fresh store, the quick profile, `digits`), then opens N tabs of
one Chromium (each tab is its own Streamlit session, so its own visitor) that arrive within
`--arrive` seconds. The browsers run at a lower priority (`--browser-nice`): here they share the
server's cores, which in a classroom they would not (one tab's first load costs Chromium about
8 s of CPU on the 2-core development machine, against 1.3 s for the server). Each visitor:
loads the app, opens the Forget set page, picks the mode "fraction of one class" and its class
(visitor i takes class i mod --groups, so every --groups-th visitor asks for the same job),
opens the Run page, clicks Run, waits for Done, opens the Alignment page and checks that it shows
its own run. Measured:

* page renders: from a click (or the first `goto`) to the page's title drawn and Streamlit idle,
  every page every visitor opens, plus the rerun after choosing the class; p50 / p95 / max;
* whether every visitor got its result, with no error or exception element on any page;
* how many run jobs the server ran (identical requests must share one job: --groups jobs);
* the peak resident memory of the Streamlit server and its job workers together (the process
  tree, sampled every 0.2 s; the browsers are not counted).

`server_script_s` adds the server's own time per full script run (logged with TMU_RENDER_LOG=1),
which is what the server controls whatever the visitors' machines, and `server_script_cpu_s` the
CPU time of those script threads (the wall time less the waits for a core that browsers on the
same machine take).

Targets (issue 10): every visitor gets its result, identical jobs run once, no visitor sees an
error, server + workers < 4 GB, p95 render < 2 s. Exit status 0 when all are met, 1 otherwise.
Bounded: the whole load is cancelled after --timeout seconds (and reported as a miss).

    .venv/bin/python scripts/load_visitors.py [--visitors 20] [--groups 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "dashboard"))
sys.path.insert(0, str(HERE))
from bench_dashboard import TreeRssSampler  # noqa: E402
from dash_browser import CHROMIUM, CHROMIUM_ARGS, streamlit_app  # noqa: E402

ERRORS = "[data-testid='stException'], [data-testid='stAlertContentError']"
AWAKE = [
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
]
"""Every tab stays awake. Without these, Chromium throttles the animation frames of tabs in the
background, and Playwright's actionability checks (is the element there, visible, stable?) run
on animation frames: a visitor's click then waited 300 s for its element to be *found* while the
element was on the page (its trace: "waiting for get_by_text(...)", never "resolved", the element
in the final snapshot) and nothing reached the server. A student's own browser shows its tab in
the foreground."""
IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"


@dataclass
class Visitor:
    index: int
    cls: int
    renders: dict[str, float] = field(default_factory=dict)
    outcome: str = ""
    shows_own_run: bool = False
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    events: list[str] = field(default_factory=list)  # "T+s what": websockets, steps, clicks
    at_failure: dict = field(default_factory=dict)  # the tab's state when a step failed
    trace: str | None = None  # the Playwright trace of a failed visitor

    def note(self, what: str) -> None:
        self.events.append(f"{time.perf_counter() - T0:7.1f} {what}")


T0 = time.perf_counter()  # reset when the load starts
STATE_JS = """() => {
  const app = document.querySelector('[data-test-connection-state]');
  const h1 = document.querySelector('h1');
  return {
    connection: app && app.getAttribute('data-test-connection-state'),
    script: app && app.getAttribute('data-test-script-state'),
    title: h1 && h1.innerText,
    status_widget: !!document.querySelector('[data-testid="stStatusWidget"]'),
    url: location.href,
  };
}"""


STEP_MS = 300_000  # the bound on one step (a page, a click); the whole load has --timeout


async def settled(page, title: str, timeout: float = STEP_MS) -> None:
    """Wait for the page titled `title` to be drawn and Streamlit's script to be idle."""
    await page.wait_for_function(
        "t => document.querySelector('h1') && document.querySelector('h1').innerText.startsWith(t)",
        arg=title,
        timeout=timeout,
        polling=50,  # not requestAnimationFrame, which Chromium throttles in unfocused tabs
    )
    await page.wait_for_timeout(100)
    await page.wait_for_function(IDLE, timeout=timeout, polling=50)


async def open_page(page, v: Visitor, title: str) -> None:
    start = time.perf_counter()
    nav = page.locator('[data-testid="stSidebarNav"] a', has_text=title).first
    v.note(f"click {title}")
    await nav.click(timeout=STEP_MS)
    await settled(page, title)
    v.renders[title] = time.perf_counter() - start
    v.note(f"on {title}")


async def collect_errors(page, v: Visitor, where: str) -> None:
    for text in await page.locator(ERRORS).all_inner_texts():
        v.errors.append(f"{where}: {text.strip()[:200]}")


def watch_sockets(page, v: Visitor) -> None:
    """Note each websocket the tab opens and closes (Streamlit's is /_stcore/stream)."""

    def opened(ws) -> None:
        v.note(f"ws open {ws.url.rsplit('/', 1)[-1]}")
        ws.on("close", lambda _: v.note("ws close"))
        ws.on("socketerror", lambda err: v.note(f"ws error {err}"))

    page.on("websocket", opened)


async def visit(browser, url: str, v: Visitor, delay: float, job_timeout: float, traces) -> Visitor:
    await asyncio.sleep(delay)
    start = time.perf_counter()
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    if traces:
        await context.tracing.start(screenshots=True, snapshots=True)
    page = await context.new_page()
    watch_sockets(page, v)
    v.note("arrive")
    try:
        await page.goto(url, timeout=STEP_MS)
        await settled(page, "Data")
        v.renders["first load (Data)"] = time.perf_counter() - start
        await collect_errors(page, v, "Data")

        await open_page(page, v, "Forget set")
        t = time.perf_counter()
        v.note("pick the mode")  # the default scenario forgets mislabeled images
        await page.get_by_text("fraction of one class", exact=True).click(timeout=STEP_MS)
        box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Class").first
        await box.wait_for(timeout=STEP_MS)
        await page.wait_for_function(IDLE, polling=50, timeout=STEP_MS)
        v.note(f"pick class {v.cls}")
        await box.click(timeout=STEP_MS)
        await page.get_by_role("option", name=str(v.cls), exact=True).click(timeout=STEP_MS)
        chosen = page.get_by_text(f"subclass:{v.cls}:0.1", exact=False).first
        await chosen.wait_for(timeout=STEP_MS)
        await page.wait_for_function(IDLE, polling=50, timeout=STEP_MS)
        v.renders["choose the class"] = time.perf_counter() - t
        await collect_errors(page, v, "Forget set")

        await open_page(page, v, "Run")
        button = page.get_by_role("button", name="Run", exact=True)
        outcome = page.locator("[data-testid='stAlert']").filter(
            has_text=re.compile(r"^(Done|Cancelled|The job failed|The forget set is invalid)")
        )
        progress = page.locator("[data-testid='stProgress']")
        for attempt in range(3):  # count the clicks a tab needed (one, when none is lost)
            v.note(f"click Run ({attempt + 1})")
            await button.click(timeout=STEP_MS)
            try:
                await progress.or_(outcome).first.wait_for(timeout=60_000)
                break
            except Exception:
                continue
        await outcome.first.wait_for(timeout=job_timeout * 1000)
        v.outcome = (await outcome.first.inner_text()).strip()
        await collect_errors(page, v, "Run")

        await open_page(page, v, "Alignment")
        await page.locator(".js-plotly-plot").first.wait_for(timeout=STEP_MS)
        picker = page.locator('[data-testid="stSelectbox"]').first.locator("input")
        picked = await picker.input_value()
        v.shows_own_run = f"subclass:{v.cls}:0.1" in picked
        if not v.shows_own_run:
            v.errors.append(f"the Alignment page shows another run: {picked!r}")
        await collect_errors(page, v, "Alignment")
    except Exception as err:  # a timeout or a missing element: this visitor failed
        v.errors.append(f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")
        v.note(f"failed: {v.errors[-1][:120]}")
        try:
            v.at_failure = await page.evaluate(STATE_JS)
        except Exception as gone:  # the page itself is gone
            v.at_failure = {"error": f"{type(gone).__name__}: {gone}"[:200]}
    finally:
        v.seconds = time.perf_counter() - start
        if traces:
            if v.errors:
                v.trace = str(traces / f"visitor-{v.index}.zip")
                await context.tracing.stop(path=v.trace)
            else:
                await context.tracing.stop()
        await context.close()
    return v


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def server_renders(log: Path, skip: int) -> list[tuple[str, float]]:
    """(page, seconds) of every full script run the server logged (TMU_RENDER_LOG=1) after the
    first `skip` bytes of its log."""
    text = log.read_bytes()[skip:].decode(errors="replace")
    found = re.findall(r"render (.+?) (\d+\.\d+)(?: session=\S+)?(?: cpu=\S+)?$", text, flags=re.M)
    return [(page, float(t)) for page, t in found]


def server_cpu(log: Path, skip: int) -> list[float]:
    """The CPU seconds of each logged script run's thread (its wall time less the waits)."""
    text = log.read_bytes()[skip:].decode(errors="replace")
    return [float(t) for t in re.findall(r" render .+ cpu=(\d+\.\d+)$", text, flags=re.M)]


def server_events(log: Path, skip: int) -> dict:
    """Counts of what dashboard.telemetry logged after the first `skip` bytes: websocket sessions
    connected, resumed and disconnected (each session once: Streamlit disconnects a closing one
    several times), runs submitted and refused."""
    text = log.read_bytes()[skip:].decode(errors="replace")
    return {
        "ws_connect": len(re.findall(r" ws connect \S+$", text, flags=re.M)),
        "ws_resume": len(re.findall(r" ws connect \S+ \(resumes", text)),
        "ws_disconnect": len(set(re.findall(r" ws disconnect (\S+)", text))),
        "submit_run": len(re.findall(r" submit run ", text)),
        "refused_run": len(re.findall(r" refused run ", text)),
        "tracebacks": text.count("Traceback (most recent call last)"),
    }


def summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 3) if values else None,
        "p95": round(percentile(values, 0.95), 3) if values else None,
        "max": round(max(values), 3) if values else None,
    }


def run_jobs(home: Path) -> list[dict]:
    """Every run job the server created (job.json of kind run)."""
    jobs = []
    for file in sorted((home / "jobs").glob("*/job.json")):
        job = json.loads(file.read_text())
        if job.get("kind") == "run":
            jobs.append({"id": file.parent.name, "forget": job["config"]["forget"]})
    return jobs


async def warm_up(browser, url: str) -> None:
    """The teacher opens the app before the class: the server imports its libraries once."""
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    await page.goto(url, timeout=STEP_MS)
    await settled(page, "Data")
    await context.close()


async def load(args, url: str, log: Path) -> tuple[list[Visitor], int]:
    """The visitors' results, and the length of the server log after the warm-up."""
    from playwright.async_api import async_playwright

    visitors = [Visitor(i, i % args.groups) for i in range(args.visitors)]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + AWAKE)
        try:
            await warm_up(browser, url)
            warm = log.stat().st_size
            global T0
            T0 = time.perf_counter()
            delays = [args.arrive * i / max(args.visitors - 1, 1) for i in range(args.visitors)]
            if args.traces:
                args.traces.mkdir(parents=True, exist_ok=True)
            await asyncio.wait_for(
                asyncio.gather(
                    *(
                        visit(browser, url, v, d, args.timeout, args.traces)
                        for v, d in zip(visitors, delays)
                    )
                ),
                timeout=args.timeout,
            )
        except asyncio.TimeoutError:
            for v in visitors:
                if not v.outcome:
                    v.errors.append(f"no result within the {args.timeout:g} s bound")
        finally:
            await browser.close()
    return visitors, warm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visitors", type=int, default=20)
    ap.add_argument("--groups", type=int, default=4, help="distinct jobs (classes) asked for")
    ap.add_argument("--arrive", type=float, default=60.0, help="seconds over which they arrive")
    ap.add_argument("--timeout", type=float, default=900.0, help="bound on the whole load (s)")
    ap.add_argument(
        "--browser-nice",
        type=int,
        default=10,
        help="niceness of the browsers: they share this machine's cores with the server, which "
        "a classroom's browsers (on the students' machines) do not",
    )
    ap.add_argument(
        "--cpu-hog",
        type=int,
        default=0,
        help="busy processes started beside the server (at its priority), to load the cores",
    )
    ap.add_argument("--traces", type=Path, help="keep a Playwright trace of each failed visitor")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not 1 <= args.groups <= 10:
        ap.error(f"--groups {args.groups}: digits has 10 classes; use 1-10")

    home = Path(tempfile.mkdtemp(prefix="tmu_load_"))
    env = {
        "TMU_HOME": str(home),
        "TMU_DASHBOARD_PROFILE": "quick",
        "TMU_DASHBOARD_DATASET": "digits",
        "TMU_RENDER_LOG": "1",
    }
    start = time.perf_counter()
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.cpu_hog)
    ]
    try:
        with streamlit_app(env, home / "streamlit.log") as (url, proc):
            sampler = TreeRssSampler(proc.pid)
            sampler.start()
            os.nice(args.browser_nice)  # the driver and the browsers it starts; the server keeps 0
            visitors, warm = asyncio.run(load(args, url, home / "streamlit.log"))
            sampler.stop.set()
    finally:
        for hog in hogs:
            hog.kill()
    wall = time.perf_counter() - start

    renders = [t for v in visitors for t in v.renders.values()]
    by_step: dict[str, list[float]] = {}
    for v in visitors:
        for step, t in v.renders.items():
            by_step.setdefault(step, []).append(t)
    jobs = run_jobs(home)
    server = server_renders(home / "streamlit.log", warm)
    done = [v for v in visitors if v.outcome == "Done" and v.shows_own_run]
    result = {
        "command": "python scripts/load_visitors.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "visitors": args.visitors,
        "groups": args.groups,
        "wall_s": round(wall, 1),
        "got_result": len(done),
        "run_jobs": len(jobs),
        "distinct_requests": len({v.cls for v in visitors if v.outcome}),
        "visitors_with_errors": sum(bool(v.errors) for v in visitors),
        "peak_server_and_workers_mb": round(sampler.peak),
        "server_events": server_events(home / "streamlit.log", warm),
        "server_script_cpu_s": summary(server_cpu(home / "streamlit.log", warm)),
        "cpu_hogs": args.cpu_hog,
        "browser_nice": args.browser_nice,
        "render_s": {"all": summary(renders), **{s: summary(t) for s, t in by_step.items()}},
        "server_script_s": {
            "all": summary([t for _, t in server]),
            **{
                p: summary([t for q, t in server if q == p]) for p in sorted({p for p, _ in server})
            },
        },
        "per_visitor": [asdict(v) for v in visitors],
    }
    targets = {
        "every visitor gets its result": len(done) == args.visitors,
        "identical jobs run once": len(jobs) == result["distinct_requests"],
        "no visitor sees an error": result["visitors_with_errors"] == 0,
        "server + workers < 4 GB": sampler.peak < 4096,
        "p95 render < 2 s": bool(renders) and percentile(renders, 0.95) < 2.0,
    }
    result["targets"] = targets
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_visitor"}, indent=2))
    for v in visitors:
        for e in v.errors:
            print(f"visitor {v.index} (class {v.cls}): {e}", file=sys.stderr)
        if v.errors:
            print(f"  at failure: {v.at_failure}; trace: {v.trace}", file=sys.stderr)
            for line in v.events:
                print(f"    {line}", file=sys.stderr)
    print(f"server log: {home / 'streamlit.log'}", file=sys.stderr)
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
