"""Job backends: run pipeline work outside the caller's thread (the dashboard's rerun loop).

`JobBackend` is the small interface the dashboard talks to: `submit` a config (and a task kind),
poll `status`, `cancel`, list `jobs` and `finished` run folders. `LocalBackend` is the default:
one worker thread that owns the device and takes jobs from a FIFO queue. Identical jobs are
de-duplicated by a hash of (kind, config): submitting a config that is queued or running returns
the same job id, and one whose folder `<root>/jobs/<key>/` is complete returns a finished job at
once (the run store caches every model, so a forced re-run is near-instant too).

Tasks are plain functions `task(cfg, store, out_dir, progress)` in `TASKS`; progress is called
with (stage, fraction) for the stages of `plan(kind, cfg)` and raises `JobCancelled` once the job
is cancelled, which aborts the pipeline between two batches. A Ray backend would implement the
same five methods with a remote task per job.
"""
from __future__ import annotations

import io
import json
import logging
import os
import queue
import threading
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .artifacts import Store, atomic_write, config_key, default_root, write_json
from .config import RunConfig, from_dict, to_dict

logger = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING)


class JobCancelled(Exception):
    """Raised from a progress callback to abort the job that reports through it."""


@dataclass
class JobStatus:
    """A snapshot of one job. `fraction` is the overall progress in [0, 1] over `stages`."""
    id: str
    kind: str
    config: dict
    out_dir: str
    state: str = QUEUED
    stages: list[str] = field(default_factory=list)
    stage: str | None = None
    stage_fraction: float = 0.0
    fraction: float = 0.0
    error: str | None = None
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def to_dict(self) -> dict:
        return asdict(self)


Task = Callable[[RunConfig, Store, Path, Callable[[str, float], None]], None]


def run_task(cfg: RunConfig, store: Store, out: Path, progress: Callable[[str, float], None]) -> None:
    """The whole pipeline, then the report and the run folder `out` (see tmu.runs)."""
    from .runs import run_to_folder
    run_to_folder(cfg, out, store=store, progress=progress)


def embedding_task(cfg: RunConfig, store: Store, out: Path, progress: Callable[[str, float], None]) -> None:
    """M_o's penultimate features of the training set D projected to 2-D with PCA:
    `out/embedding.npz` with ids (n,), xy (n, 2) and labels (n,)."""
    from sklearn.decomposition import PCA

    from .pipeline import original_model
    from .training import embed

    o = original_model(cfg, store=store, progress=lambda f: progress("original", f))
    progress("embed", 0.0)
    feats = embed(o.model, o.pool.x, o.train, device=o.device)
    progress("embed", 1.0)
    xy = PCA(n_components=2, random_state=cfg.seed).fit_transform(feats)
    buf = io.BytesIO()
    np.savez(buf, ids=o.train, xy=xy.astype(np.float32), labels=o.pool.y.numpy()[o.train])
    atomic_write(out / "embedding.npz", buf.getvalue())


def _plan_run(cfg: RunConfig) -> list[str]:
    from .pipeline import plan_stages
    return plan_stages(cfg)


TASKS: dict[str, Task] = {"run": run_task, "embedding": embedding_task}
PLANS: dict[str, Callable[[RunConfig], list[str]]] = {"run": _plan_run, "embedding": lambda cfg: ["original", "embed"]}
DONE_MARKER = {"run": "report.json", "embedding": "embedding.npz"}


def plan(kind: str, cfg: RunConfig) -> list[str]:
    """The stage names a job of `kind` reports progress for."""
    return PLANS[kind](cfg)


def job_key(kind: str, cfg: RunConfig) -> str:
    """The de-duplication key: a hash of the task kind and the whole config."""
    if kind not in TASKS:
        raise ValueError(f"unknown job kind {kind!r}; valid kinds: {sorted(TASKS)}")
    return config_key("job", kind, to_dict(cfg))


class JobBackend(ABC):
    """Where jobs run. Every method returns at once; work happens elsewhere."""

    root: Path

    @abstractmethod
    def submit(self, cfg: RunConfig, kind: str = "run", *, force: bool = False) -> str:
        """Queue `cfg` (unless an identical job is active or finished) and return its job id."""

    @abstractmethod
    def status(self, job_id: str) -> JobStatus:
        """The job's current snapshot; KeyError for an unknown id."""

    @abstractmethod
    def cancel(self, job_id: str) -> bool:
        """Ask an active job to stop; True if it was active."""

    @abstractmethod
    def jobs(self) -> list[JobStatus]:
        """Every job this backend knows of, newest first."""

    def out_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def finished(self, kind: str = "run") -> list[Path]:
        """Complete job folders of `kind` on disk, newest first (survive restarts and sessions)."""
        marker = DONE_MARKER[kind]
        found = [p.parent for p in (self.root / "jobs").glob(f"*/{marker}")]
        return sorted(found, key=lambda p: (p / marker).stat().st_mtime, reverse=True)


def worker_main(argv: list[str]) -> int:
    """`python -m tmu.jobs KIND OUT_DIR ROOT`: run one job in its own process (config read from
    OUT_DIR/job.json); progress and the outcome are JSON lines on stdout."""
    kind, out, root = argv
    cfg = from_dict(RunConfig, json.loads((Path(out) / "job.json").read_text())["config"])
    # The worker shares the machine with the Streamlit server and the browser: on a 2-core laptop,
    # a second intra-op thread spins against them and made a cold demo run three times slower.
    import torch
    torch.set_num_threads(int(os.environ.get("TMU_WORKER_THREADS", "1")))
    last = [0.0]

    def progress(stage: str, frac: float) -> None:
        now = time.monotonic()
        if now - last[0] > 0.1 or frac in (0.0, 1.0):
            last[0] = now
            print(json.dumps({"stage": stage, "fraction": float(frac)}), flush=True)

    try:
        TASKS[kind](cfg, Store(root), Path(out), progress)
    except Exception as err:  # reported to the parent, which marks the job failed
        logger.warning("job failed: %s", traceback.format_exc())
        print(json.dumps({"failed": f"{type(err).__name__}: {err}"}), flush=True)
        return 1
    print(json.dumps({"done": True}), flush=True)
    return 0


class LocalBackend(JobBackend):
    """One worker owning the device, a FIFO queue, de-duplication, cancel, progress.

    With `processes=True` (the dashboard's choice) each job runs in a child `python -m tmu.jobs`
    that the worker thread supervises, so training never competes with the web server for the GIL
    or the OpenMP thread pool (which slowed training several-fold in-process); the child runs the
    module's own `TASKS[kind]`. `processes=False` runs `tasks[kind]` on the worker thread."""

    def __init__(self, root: str | Path | None = None, tasks: dict[str, Task] | None = None,
                 processes: bool = False):
        self.processes = processes
        self.root = Path(root) if root is not None else default_root()
        self.store = Store(self.root)
        self.tasks = dict(tasks or TASKS)
        self._jobs: dict[str, JobStatus] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._queue: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="tmu-job-worker", daemon=True)
        self._worker.start()

    def submit(self, cfg: RunConfig, kind: str = "run", *, force: bool = False) -> str:
        key = job_key(kind, cfg)
        out = self.out_dir(key)
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.active:
                return key
            stages = plan(kind, cfg)
            job = JobStatus(key, kind, to_dict(cfg), str(out), stages=stages)
            if not force and (out / DONE_MARKER[kind]).is_file():
                job.state, job.fraction, job.stage = DONE, 1.0, stages[-1]
                job.started = job.finished = time.time()
                self._jobs[key] = job
                return key
            self._jobs[key] = job
            self._cancel[key] = threading.Event()
        write_json(out / "job.json", {"kind": kind, "config": to_dict(cfg)})
        self._queue.put(key)
        return key

    def status(self, job_id: str) -> JobStatus:
        with self._lock:
            if job_id in self._jobs:
                return JobStatus(**asdict(self._jobs[job_id]))
        return self._from_disk(job_id)

    def _from_disk(self, job_id: str) -> JobStatus:
        out = self.out_dir(job_id)
        meta = out / "job.json"
        if not meta.is_file():
            raise KeyError(f"unknown job {job_id!r}")
        info = json.loads(meta.read_text())
        kind = info["kind"]
        done = (out / DONE_MARKER[kind]).is_file()
        return JobStatus(job_id, kind, info["config"], str(out), state=DONE if done else FAILED,
                         fraction=1.0 if done else 0.0, error=None if done else "interrupted (no result on disk)")

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not job.active:
                return False
            self._cancel[job_id].set()
            if job.state == QUEUED:
                job.state, job.finished = CANCELLED, time.time()
            return True

    def jobs(self) -> list[JobStatus]:
        with self._lock:
            return sorted((JobStatus(**asdict(j)) for j in self._jobs.values()), key=lambda j: -j.submitted)

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.05) -> JobStatus:
        """Block until the job leaves the queue and the worker (for scripts and tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (job := self.status(job_id)).active:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout} s")
            time.sleep(poll)
        return job

    def _progress(self, job_id: str) -> Callable[[str, float], None]:
        cancel = self._cancel[job_id]

        def report(stage: str, frac: float) -> None:
            if cancel.is_set():
                raise JobCancelled(job_id)
            with self._lock:
                job = self._jobs[job_id]
                frac = min(max(float(frac), 0.0), 1.0)
                index = job.stages.index(stage) if stage in job.stages else None
                job.stage, job.stage_fraction = stage, frac
                if index is not None:
                    job.fraction = max(job.fraction, (index + frac) / len(job.stages))
        return report

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            with self._lock:
                job = self._jobs[job_id]
                if job.state != QUEUED:
                    continue
                job.state, job.started = RUNNING, time.time()
                kind = job.kind
            run = self._run_in_process if self.processes else self._run_in_thread
            state, error = run(job_id, kind, job)
            with self._lock:
                job.state, job.error, job.finished = state, error, time.time()
                if state == DONE:
                    job.fraction, job.stage_fraction = 1.0, 1.0

    def _run_in_thread(self, job_id: str, kind: str, job: JobStatus) -> tuple[str, str | None]:
        try:
            self.tasks[kind](from_dict(RunConfig, job.config), self.store, Path(job.out_dir), self._progress(job_id))
        except JobCancelled:
            return CANCELLED, None
        except Exception as err:  # the job fails, the worker lives on and reports why
            logger.warning("job %s failed: %s", job_id, traceback.format_exc())
            return FAILED, f"{type(err).__name__}: {err}"
        return DONE, None

    def _run_in_process(self, job_id: str, kind: str, job: JobStatus) -> tuple[str, str | None]:
        """Run the job as `python -m tmu.jobs` (a fresh interpreter: no GIL or thread-pool sharing
        with the caller); cancel terminates it, which is safe as every store write is atomic."""
        import subprocess
        import sys
        proc = subprocess.Popen([sys.executable, "-m", "tmu.jobs", kind, job.out_dir, str(self.root)],
                                stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True).start()
        report, outcome = self._progress(job_id), (FAILED, "the worker process ended without a result")
        while True:
            if self._cancel[job_id].is_set():
                proc.terminate()
                proc.wait()
                return CANCELLED, None
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "stage" in msg:
                try:
                    report(msg["stage"], msg["fraction"])
                except JobCancelled:
                    continue
            elif "done" in msg:
                outcome = (DONE, None)
            elif "failed" in msg:
                outcome = (FAILED, msg["failed"])
        proc.wait()
        return outcome


if __name__ == "__main__":
    import sys
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    raise SystemExit(worker_main(sys.argv[1:]))
