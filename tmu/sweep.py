"""`python -m tmu sweep`: a grid of runs (datasets × forget specs × seeds) as parallel jobs on a
job backend, one row per (dataset, forget spec, seed, model) in `OUT/sweep.csv` and each run
folder under `OUT/runs/`.

The grid goes through the same `JobQueue` as the dashboard's jobs: on this machine (one job at a
time in this process, or `--workers N` worker processes) or on a Ray cluster (one job per GPU
worker at once, `tmu.ray_backend`). The benchmark runs its grid the same way, so a benchmark that
takes an hour on one machine takes minutes on a cluster.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .artifacts import Store
from .config import RunConfig, from_dict
from .jobs import DONE, JobQueue, ProcessRunner, Runner, ThreadRunner

logger = logging.getLogger(__name__)

COLUMNS = (
    "dataset",
    "forget",
    "seed",
    "method",
    "acc_forget",
    "acc_retain",
    "acc_test",
    "delta_forget",
    "agreement",
    "per_class_delta",
    "mia_forget",
    "seconds",
    "retrain_ratio",
    "run",
)


class SweepError(ValueError):
    """A bad sweep argument; the message names it."""


def parse_seeds(text: str) -> list[int]:
    """`0,1,5` or `0-9` or `100-104,200` -> sorted unique seeds."""
    seeds: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m or (m[2] is not None and int(m[2]) < int(m[1])):
            raise SweepError(f"seeds {text!r}: {part!r} is not N or N-M (M >= N)")
        seeds.update(range(int(m[1]), int(m[2] or m[1]) + 1))
    if not seeds:
        raise SweepError(f"seeds {text!r}: no seed given")
    return sorted(seeds)


def grid(
    datasets: list[str],
    forgets: list[str],
    seeds: list[int],
    base: dict,
    device_here: bool = True,
) -> list[RunConfig]:
    """One validated RunConfig per (dataset, forget spec, seed), `base` filling the rest
    (`device_here`: see `tmu.pipeline.validate`)."""
    from .pipeline import validate

    cfgs = []
    for dataset in datasets:
        for forget in forgets:
            for seed in seeds:
                cfg = from_dict(
                    RunConfig, {**base, "dataset": dataset, "forget": forget, "seed": seed}
                )
                validate(cfg, device_here)
                cfgs.append(cfg)
    return cfgs


def local_queue(store: Store, workers: int = 1) -> JobQueue:
    """This machine: one job at a time in this process, or `workers` worker processes."""
    runner: Runner = ThreadRunner() if workers == 1 else ProcessRunner()
    return JobQueue(store.root, runner=runner, workers=workers)


def ray_queue(store: Store, address: str, workers: int | None = None) -> JobQueue:
    """A Ray cluster's workers (one job per worker at once)."""
    from .ray_backend import RayRunner

    return JobQueue(store.root, runner=RayRunner(address, workers=workers))


def run_jobs(
    queue: JobQueue,
    cfgs: list[RunConfig],
    kind: str = "run",
    on_change: Callable[[int, int, int], None] | None = None,
    poll: float = 0.2,
) -> list[Path | str]:
    """Submit every config, wait for all; per config its finished job folder, or the error
    message of a job that failed. `on_change(done, failed, total)` reports progress."""
    ids = [queue.submit(cfg, kind) for cfg in cfgs]
    last = None
    while True:
        jobs = [queue.status(i) for i in ids]
        ended = sum(not j.active for j in jobs)
        done = sum(j.state == DONE for j in jobs)
        if on_change is not None and (done, ended) != last:
            on_change(done, ended - done, len(ids))
            last = done, ended
        if ended == len(ids):
            break
        time.sleep(poll)
    return [Path(j.out_dir) if j.state == DONE else (j.error or j.state) for j in jobs]


def rows(report: dict, run: str = "") -> list[dict]:
    """The sweep rows of one report: the original, each gold seed and each method."""
    cfg, models = report["config"], report["models"]
    entries = [("original", models["original"])]
    entries += [(f"gold_{k}", g) for k, g in enumerate(models["gold"])]
    entries += [(m, models[m]) for m in report["methods"]]
    nan = math.nan
    out = []
    for name, e in entries:
        vs = e.get("vs_gold", {})
        out.append(
            {
                "dataset": cfg["dataset"],
                "forget": cfg["forget"],
                "seed": cfg["seed"],
                "method": name,
                "acc_forget": e["acc"]["forget"],
                "acc_retain": e["acc"].get("retain", nan),
                "acc_test": e["acc"]["test"],
                "delta_forget": vs.get("delta_forget", nan),
                "agreement": vs.get("agreement_forget", nan),
                "per_class_delta": vs.get("per_class_delta_forget", nan),
                "mia_forget": e["mia"]["forget_member_rate"],
                "seconds": e["seconds"],
                "retrain_ratio": e.get("retrain_time_ratio", nan),
                "run": run,
            }
        )
    return out


def slug(cfg: RunConfig) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{cfg.dataset}-{cfg.forget}-s{cfg.seed}").strip("-")


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a finished job folder to `dest` (hard links where the filesystem allows)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(src, dest, copy_function=os.link)
    except OSError:
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src, dest)


@dataclass
class SweepResult:
    rows: list[dict]
    failed: list[tuple[RunConfig, str]]
    csv: Path


def run_sweep(
    queue: JobQueue,
    cfgs: list[RunConfig],
    out: Path,
    on_change: Callable[[int, int, int], None] | None = None,
) -> SweepResult:
    """Run the grid on `queue`, copy each run folder to OUT/runs/SLUG and write OUT/sweep.csv."""
    import json

    results = run_jobs(queue, cfgs, on_change=on_change)
    table, failed = [], []
    for cfg, res in zip(cfgs, results):
        if isinstance(res, str):
            failed.append((cfg, res))
            continue
        dest = out / "runs" / slug(cfg)
        if dest.resolve() != res.resolve():
            copy_tree(res, dest)
        table += rows(json.loads((dest / "report.json").read_text()), str(dest.relative_to(out)))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "sweep.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(table)
    return SweepResult(table, failed, path)
