"""Benchmark the Ray backend on this machine: a job's overhead over the local backends once the
worker is warm, and the dashboard's page render times while a job runs on the Ray worker.

Starts its own Ray head on 127.0.0.1 (token authentication on, one fake GPU), runs the same tiny
job (digits, every model cached in the store after a warm-up, so the job is: load the data and
the cached models, evaluate, write the run folder) `--repeats` times on

* `local thread`: the CLI's / sweep's default (in this process);
* `local process`: the dashboard's default (a fresh `python -m tmu.jobs` per job);
* `ray, shared store`: the Ray worker writes the folder in place (one machine, or shared storage);
* `ray, copied back`: the worker's own store, the folder sent back through Ray (no shared FS);

then renders every dashboard page (Streamlit AppTest, server side, no browser) with
TMU_BACKEND=ray while a long job runs on the worker. Stops the cluster at the end.

    .venv/bin/python scripts/bench_ray.py [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOKEN = secrets.token_hex(16)
RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # loopback only
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": TOKEN,
    "RAY_USAGE_STATS_ENABLED": "0",
}
os.environ.update(RAY_ENV)  # before Ray is imported: it reads the token once
TINY = {
    "dataset": "digits",
    "methods": ["tmu", "finetune"],
    "gold_seeds": 2,
    "device": "cpu",
    "train": {"epochs": 3},
    "twin": {"min_size": 50, "max_epochs": 2},
    "predictor": {"epochs": 20, "folds": 2},
}
PAGES = ["data", "forget", "run", "alignment", "attributions", "compare"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_jobs(queue, cfg, repeats: int) -> list[float]:
    """Wall time of `repeats` forced re-runs of `cfg` (submit to done), after one warm-up."""
    queue.wait(queue.submit(cfg, force=True), timeout=600)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        job = queue.wait(queue.submit(cfg, force=True), timeout=600, poll=0.01)
        assert job.state == "done", job.error
        times.append(time.perf_counter() - start)
    return times


def page_renders(address: str, home: Path, long_cfg) -> dict[str, float]:
    """Each page's AppTest render time with TMU_BACKEND=ray while `long_cfg` runs on Ray."""
    from streamlit.testing.v1 import AppTest

    from dashboard import service
    from tmu.config import RunConfig, from_dict

    os.environ.update(
        TMU_BACKEND="ray",
        TMU_RAY_ADDRESS=address,
        TMU_HOME=str(home),
        TMU_DASHBOARD_DATASET="digits",
        TMU_DASHBOARD_PROFILE="quick",
    )
    be = service.backend()
    # a finished run first, so that the result pages draw their charts
    done = be.wait(be.submit(from_dict(RunConfig, TINY)), timeout=600)
    assert done.state == "done", done.error
    job_id = be.submit(long_cfg)
    while be.status(job_id).stage is None:
        time.sleep(0.1)
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    renders = {}
    for page in PAGES:
        at.switch_page(f"views/{page}.py")
        start = time.perf_counter()
        at.run()
        renders[page] = time.perf_counter() - start
        assert not at.exception, [e.value for e in at.exception]
        renders[f"{page} charts"] = len(at.get("plotly_chart"))
    still_running = be.status(job_id).state == "running"
    be.cancel(job_id)
    be.wait(job_id, timeout=60)
    renders["job still running after the last page"] = still_running
    return renders


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch

    from tmu import ray_backend
    from tmu.config import RunConfig, from_dict
    from tmu.jobs import JobQueue, ProcessRunner, ThreadRunner

    torch.set_num_threads(1)  # as the worker processes (one CPU each)
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    base = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    port = free_port()
    env = {**os.environ, "TMU_HOME": str(base / "worker-store"), "OMP_WAIT_POLICY": "PASSIVE"}
    start = [ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port)]
    start += ["--num-cpus", "2", "--num-gpus", "1", "--include-dashboard", "false"]
    subprocess.run(start + ["--disable-usage-stats"], env=env, check=True, capture_output=True)
    address = f"127.0.0.1:{port}"
    out: dict = {
        "machine": f"{platform.platform()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}",
        "repeats": args.repeats,
        "job": TINY,
    }
    try:
        t0 = time.perf_counter()
        runner = ray_backend.RayRunner(address, poll=0.05)
        out["connect_seconds"] = time.perf_counter() - t0
        cfg = from_dict(RunConfig, TINY)
        t0 = time.perf_counter()
        first = JobQueue(base / "cold", runner=runner)
        job = first.wait(first.submit(cfg), timeout=600)
        assert job.state == "done", job.error
        out["first_ray_job_seconds (cold worker, training every model)"] = time.perf_counter() - t0

        jobs = {
            "local thread": JobQueue(base / "s-thread", runner=ThreadRunner()),
            "local process": JobQueue(base / "s-process", runner=ProcessRunner()),
            "ray, shared store": JobQueue(base / "s-ray", runner=runner),
        }
        times = {name: timed_jobs(q, cfg, args.repeats) for name, q in jobs.items()}
        real_id = ray_backend.store_id
        ray_backend.store_id = lambda root: "not visible to the worker"
        try:
            times["ray, copied back"] = timed_jobs(
                JobQueue(base / "s-copy", runner=runner), cfg, args.repeats
            )
        finally:
            ray_backend.store_id = real_id
        out["job_seconds"] = {
            k: {"median": statistics.median(v), "all": v} for k, v in times.items()
        }
        local = statistics.median(times["local thread"])
        out["overhead_over_local_thread"] = {
            k: statistics.median(v) - local for k, v in times.items()
        }
        long = from_dict(RunConfig, {**TINY, "seed": 1, "train": {"epochs": 200}})
        out["page_render_seconds_while_a_ray_job_runs"] = page_renders(address, base / "dash", long)
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)

    text = json.dumps(out, indent=2)
    print(text)
    print("\n| backend | median job wall time (s) | overhead over local thread (s) |")
    print("|---|---|---|")
    for k, v in out["job_seconds"].items():
        print(f"| {k} | {v['median']:.2f} | {out['overhead_over_local_thread'][k]:+.2f} |")
    print("\n| page (TMU_BACKEND=ray, a job running on the worker) | render (s) |\n|---|---|")
    for k, v in out["page_render_seconds_while_a_ray_job_runs"].items():
        print(f"| {k} | {v if isinstance(v, (bool, int)) else f'{v:.2f}'} |")
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
