"""Job backends: run pipeline work outside the caller's thread (the dashboard's rerun loop).

Three pieces:

* `JobKind` — what a job does: a task `task(cfg, store, out_dir, progress)`, the stage names it
  reports progress for, and the file that marks its folder finished. Kinds live in one registry,
  `JOB_KINDS` (`run`: the whole pipeline and its run folder); a caller may add its own
  (`register_job_kind`, or the `kinds=` of a backend).
* `JobBackend` — the small interface the dashboard talks to: `submit` a config (and a kind), poll
  `status`, `cancel`, list `jobs` and `finished` job folders.
* `Runner` — how one job is executed: `ThreadRunner` (in this process) or `ProcessRunner` (a
  fresh `python -m tmu.jobs` per job). `JobQueue` is the backend that keeps the job table and a
  FIFO queue, de-duplicates and cancels, and hands each job to its runner on one worker thread
  that owns the device. Another engine is one more `Runner`.

Identical jobs are de-duplicated by a hash of (kind, config): submitting a config that is queued
or running returns the same job id, and one whose folder `<root>/jobs/<key>/` is complete returns
a finished job at once (the run store caches every model, so a forced re-run is near-instant too).
Progress is called with (stage, fraction) and raises `JobCancelled` once the job is cancelled,
which aborts the pipeline between two batches.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .artifacts import Store, config_key, default_root, write_json
from .budget import Entry, Pins, evict, paths_under
from .config import RunConfig, from_dict, to_dict

logger = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING)
REPO_ROOT = Path(__file__).resolve().parents[1]

Progress = Callable[[str, float], None]
Task = Callable[[RunConfig, Store, Path, Progress], None]


OUT_OF_MEMORY = (
    "the GPU ran out of memory ({detail}); use a smaller batch (--set train.batch_size=N, or "
    "method_params.NAME.batch_size=N for a method), a smaller model, or --device cpu"
)


def out_of_memory(err: BaseException) -> bool:
    """Whether `err` is CUDA running out of memory."""
    import torch

    return isinstance(err, torch.OutOfMemoryError) or "CUDA out of memory" in str(err)


def error_text(err: BaseException) -> str:
    """The one line a user reads when a job fails: the error's type and message, and for CUDA
    out-of-memory what to do about it."""
    if out_of_memory(err):
        return OUT_OF_MEMORY.format(detail=" ".join(str(err).split())[:200])
    return f"{type(err).__name__}: {err}"


class QueueFull(ValueError):
    """The queue, or this owner's share of it, is full; the message says what to do."""


class JobCancelled(Exception):
    """Raised from a progress callback to abort the job that reports through it."""


class JobSubmitError(OSError):
    """A job could not be queued (its job.json could not be written: a full disk, no
    permission). An OSError, so callers that already catch those keep working."""


@dataclass(frozen=True)
class JobKind:
    """What a job of this kind does. `task` must be a module-level function for a process runner
    (which imports it by name in a fresh interpreter); `stages(cfg)` names the stages it reports;
    `marker` is the file in the job folder whose presence means the job finished."""

    name: str
    task: Task
    stages: Callable[[RunConfig], list[str]]
    marker: str

    @property
    def task_path(self) -> str:
        """`module:function` of the task, for a process runner."""
        return f"{self.task.__module__}:{self.task.__qualname__}"


def run_task(cfg: RunConfig, store: Store, out: Path, progress: Progress) -> None:
    """The whole pipeline, then the report and the run folder `out` (see tmu.runs)."""
    from .runs import run_to_folder

    run_to_folder(cfg, out, store=store, progress=progress)


def _run_stages(cfg: RunConfig) -> list[str]:
    from .pipeline import plan_stages

    return plan_stages(cfg)


JOB_KINDS: dict[str, JobKind] = {}


def register_job_kind(kind: JobKind) -> JobKind:
    """Add `kind` to the registry that backends built without `kinds=` use; returns it."""
    JOB_KINDS[kind.name] = kind
    return kind


register_job_kind(JobKind("run", run_task, _run_stages, "report.json"))


def input_fingerprint(cfg: RunConfig, max_age: float = 0.0) -> str:
    """What the files `cfg` names hold now: an image folder's listing (`content_fingerprint`,
    reused for `max_age` seconds while its folders are unchanged: a reader's polls) and the
    original weights' stamp (`file_stamp`); "" for a registry dataset without weights. No file
    is read."""
    from .data import content_fingerprint
    from .models import file_stamp

    data = content_fingerprint(cfg.dataset, cfg.data_root, max_age)
    weights = file_stamp(cfg.original_weights)
    return f"{data}:{weights}" if data or weights else ""


def job_key(kind: str, cfg: RunConfig, max_age: float = 0.0) -> str:
    """The de-duplication key: a hash of the job kind, the whole config and what its files hold
    now (`input_fingerprint`): a dataset replaced under the same name, or edited weights, make a
    fresh job instead of returning the old results. With a registry dataset and no weights
    nothing is added, so those keys are the ones older versions wrote. `max_age`: see
    `input_fingerprint` (0, exact, for a submit)."""
    fingerprint = input_fingerprint(cfg, max_age)
    return config_key("job", kind, to_dict(cfg), *([fingerprint] if fingerprint else []))


GENERATION = re.compile(r"([0-9a-f]{16})\.\d+")
"""A later generation of job KEY, `KEY.N`: submitted while the cancelled job KEY still stopped."""


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
    owners: list[str] = field(default_factory=list)  # who asked for it (dashboard visitors)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def copy(self) -> JobStatus:
        return JobStatus(**asdict(self))


class JobBackend(ABC):
    """Where jobs run. Every method returns at once; work happens elsewhere."""

    root: Path
    kinds: dict[str, JobKind]

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

    def kind(self, name: str) -> JobKind:
        if name not in self.kinds:
            raise ValueError(f"unknown job kind {name!r}; valid kinds: {sorted(self.kinds)}")
        return self.kinds[name]

    def out_dir(self, job_id: str) -> Path:
        """The job's folder, named by its key (every generation `KEY.N` of a key shares it)."""
        later = GENERATION.fullmatch(job_id)
        return self.root / "jobs" / (later.group(1) if later else job_id)

    def finished(self, kind: str = "run") -> list[Path]:
        """Complete job folders of `kind` on disk, newest first (survive restarts and sessions)."""
        marker = self.kind(kind).marker
        stamped = []
        for file in (self.root / "jobs").glob(f"*/{marker}"):
            try:
                stamped.append((file.stat().st_mtime, file.parent))
            except OSError:  # evicted (store budget) or removed between the listing and now
                continue
        return [folder for _, folder in sorted(stamped, key=lambda s: s[0], reverse=True)]


# ---------------------------------------------------------------- runners


class Runner(ABC):
    """Executes one job to its end; returns (final state, error message or None).

    `report(stage, fraction)` records progress; `cancelled` is set when the job should stop.
    `parallelism`: how many jobs it can run at once (a JobQueue starts that many worker
    threads)."""

    parallelism: int = 1

    def describe(self) -> dict:
        """Where jobs run, for the dashboard: this machine and its device."""
        from .models import device_label, resolve_device

        return {"backend": "local", "device": device_label(resolve_device("auto"))}

    @abstractmethod
    def run(
        self,
        kind: JobKind,
        job: JobStatus,
        store: Store,
        report: Progress,
        cancelled: threading.Event,
    ) -> tuple[str, str | None]: ...


class ThreadRunner(Runner):
    """Runs the task on the calling (worker) thread; cancel acts at the next progress call."""

    def run(self, kind, job, store, report, cancelled):
        try:
            kind.task(from_dict(RunConfig, job.config), store, Path(job.out_dir), report)
        except JobCancelled:
            return CANCELLED, None
        except Exception as err:  # the job fails, the worker lives on and reports why
            logger.warning("job %s failed: %s", job.id, traceback.format_exc())
            return FAILED, error_text(err)
        return DONE, None


class ProcessRunner(Runner):
    """Runs each job as `python -m tmu.jobs OUT_DIR ROOT` (a fresh interpreter: no GIL or thread
    pool shared with the caller, which slowed training several-fold in-process); cancel terminates
    it, which is safe as every store write is atomic. Progress and the outcome come back as JSON
    lines on the child's stdout."""

    def run(self, kind, job, store, report, cancelled):
        if "<locals>" in kind.task_path:
            return (
                FAILED,
                f"job kind {kind.name!r}: its task must be a module-level function to run in a "
                "process",
            )
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tmu.jobs", job.out_dir, str(store.root)],
                stdout=subprocess.PIPE,
                text=True,
                cwd=REPO_ROOT,
            )
        except OSError as err:  # ENOMEM/EAGAIN at fork, a missing interpreter: this job fails
            logger.warning("job %s: cannot start the worker process: %s", job.id, err)
            return FAILED, f"cannot start the worker process: {type(err).__name__}: {err}"
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True
        ).start()
        outcome = (FAILED, "the worker process ended without a result")
        while True:
            if cancelled.is_set():
                proc.terminate()
                proc.wait()
                return CANCELLED, None
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            outcome = self._handle(line, report) or outcome
        rc = proc.wait()
        if rc < 0 and outcome[0] != DONE:  # killed: say by what (the kernel's OOM killer sends 9)
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = "unknown"
            outcome = (
                FAILED,
                f"the worker process was killed by signal {-rc} ({name}"
                + (", e.g. the system ran out of memory" if -rc == signal.SIGKILL else "")
                + "); a rerun reuses every model stored before",
            )
        return outcome

    @staticmethod
    def _handle(line: str, report: Progress) -> tuple[str, str | None] | None:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            return None
        if "stage" in msg:
            try:
                report(msg["stage"], msg["fraction"])
            except JobCancelled:
                pass  # the loop above terminates the child
        elif "done" in msg:
            return DONE, None
        elif "failed" in msg:
            return FAILED, msg["failed"]
        return None


def worker_main(argv: list[str]) -> int:
    """`python -m tmu.jobs OUT_DIR ROOT`: run the job described by OUT_DIR/job.json (its task's
    `module:function` and config) in this process; progress and the outcome as JSON lines."""
    out, root = argv
    info = json.loads((Path(out) / "job.json").read_text())
    module, _, name = info["task"].partition(":")
    task = getattr(importlib.import_module(module), name)
    cfg = from_dict(RunConfig, info["config"])
    # The worker shares the machine with the Streamlit server and the browser: on a 2-core laptop,
    # a second intra-op thread spins against them and made a cold demo run three times slower.
    import torch

    from .threads import share_cores

    workers = int(os.environ.get("TMU_WORKER_THREADS", "1"))
    if not share_cores(max_threads=workers):  # counted by other tmu processes, at most `workers`
        torch.set_num_threads(workers)
    last = [0.0]

    def progress(stage: str, frac: float) -> None:
        now = time.monotonic()
        if now - last[0] > 0.1 or frac in (0.0, 1.0):
            last[0] = now
            print(json.dumps({"stage": stage, "fraction": float(frac)}), flush=True)

    try:
        task(cfg, Store(root), Path(out), progress)
    except Exception as err:  # reported to the parent, which marks the job failed
        logger.warning("job failed: %s", traceback.format_exc())
        print(json.dumps({"failed": error_text(err)}), flush=True)
        return 1
    print(json.dumps({"done": True}), flush=True)
    return 0


# ---------------------------------------------------------------- the job table and queue


class JobQueue(JobBackend):
    """The job table, a FIFO queue, de-duplication and cancel, with worker threads (one by
    default: it owns the device; `workers`, else the runner's parallelism, e.g. one per GPU of a
    Ray cluster) that hand each job to `runner` (a ThreadRunner by default; the dashboard uses a
    ProcessRunner, or a `tmu.ray_backend.RayRunner`). Without `kinds` it uses the registry
    JOB_KINDS as it is at each submit. On start it clears the store of day-old temporary files
    and interrupted job folders (`Store.clean`).

    With `max_store_bytes`, it keeps the store within that budget at start and after each job,
    least recently used first (`tmu.budget`), but never what is in use: an active job's folder
    and the files its config names, and what an owner pinned (`pin`: the run a tab shows), for
    `pin_seconds` after the owner's last pin."""

    def __init__(
        self,
        root: str | Path | None = None,
        runner: Runner | None = None,
        kinds: dict[str, JobKind] | None = None,
        workers: int | None = None,
        max_queued: int | None = None,
        max_per_owner: int | None = None,
        max_store_bytes: int | None = None,
        pin_seconds: float = 3600.0,
    ):
        self.root = Path(root if root is not None else default_root()).resolve()
        self.store = Store(self.root)
        self.runner = runner or ThreadRunner()
        # The registry itself (not a copy): a kind registered later is found too.
        self.kinds = JOB_KINDS if kinds is None else dict(kinds)
        self._jobs: dict[str, JobStatus] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._latest: dict[str, str] = {}  # job key -> the id of its newest job (generation)
        self._busy: dict[str, threading.Event] = {}  # job folder -> set once its job stops
        self.max_queued, self.max_per_owner = max_queued, max_per_owner
        self._queue: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self.max_store_bytes, self.pins = max_store_bytes, Pins(pin_seconds)
        self._evicting = threading.Lock()
        self.store.clean(keep_job=self._keep_job)
        self.enforce_budget()
        self._workers = [
            threading.Thread(target=self._work, name=f"tmu-job-worker-{i}", daemon=True)
            for i in range(workers or self.runner.parallelism)
        ]
        for t in self._workers:
            t.start()

    def _keep_job(self, folder: Path) -> bool:
        """Whether Store.clean keeps an old job folder: a finished one (its kind's marker), and
        one of a kind this queue does not know (it cannot tell whether that one finished). An
        interrupted or failed job's folder, or one without a readable job.json, goes."""
        try:
            kind = json.loads((folder / "job.json").read_text())["kind"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return kind not in self.kinds or (folder / self.kinds[kind].marker).is_file()

    def pin(self, owner: str | None, paths: Iterable[str | Path | None]) -> None:
        """Keep `paths` (the run `owner`'s tab shows, the weights it uses) from eviction, instead
        of what `owner` pinned before, until `pin_seconds` pass without another pin."""
        self.pins.pin(owner, paths)

    def in_use(self) -> set[Path]:
        """What eviction keeps: active jobs' folders and the store files their configs name
        (uploaded weights), and every path pinned now."""
        with self._lock:
            active = [(j.out_dir, j.config) for j in self._jobs.values() if j.active]
        used = {Path(out) for out, _ in active}
        used.update(p for _, config in active for p in paths_under(config, self.root))
        return used | self.pins.paths()

    def enforce_budget(self) -> list[Entry]:
        """Evict the least recently used store entries beyond `max_store_bytes` (None: no
        budget), keeping what is in use; returns what went (logged by tmu.budget). One eviction
        at a time: a worker that finds another one evicting skips its turn."""
        if self.max_store_bytes is None or not self._evicting.acquire(blocking=False):
            return []
        try:
            return evict(self.store, self.max_store_bytes, self.in_use())
        finally:
            self._evicting.release()

    def _after_job(self, job: JobStatus) -> None:
        """Once `job` ended: pin a finished job's folder for its owners (their tabs show it
        next), then keep the store within its budget. A fault here is logged, never the job's."""
        try:
            with self._lock:
                owners = list(job.owners) or [None]
            if job.state == DONE:
                for owner in owners:
                    self.pin(owner, [job.out_dir, *paths_under(job.config, self.root)])
            self.enforce_budget()
        except Exception:
            logger.exception("after job %s: keeping the store within its budget failed", job.id)

    def describe(self) -> dict:
        """Where this queue's jobs run (the runner's description) and how many run at once."""
        return {**self.runner.describe(), "parallel_jobs": len(self._workers)}

    def submit(
        self, cfg: RunConfig, kind: str = "run", *, force: bool = False, owner: str | None = None
    ) -> str:
        """Queue `cfg` for `owner` (a dashboard visitor; None: nobody in particular). An identical
        active job is shared (its owners grow), never run twice. A new job beyond `max_queued`
        waiting jobs, or beyond `max_per_owner` active jobs of this owner, raises QueueFull.

        A job that was cancelled but still stops (its process dying) is not shared: the caller
        gets a fresh job, the next generation `KEY.N` of the key, in the same folder, which
        starts only once the cancelled one has stopped (see `_claim`)."""
        spec = self.kind(kind)
        key = job_key(kind, cfg)
        out = self.out_dir(key)
        with self._lock:
            if (shared := self._join(key, owner)) is not None:
                return shared
        job = JobStatus(key, kind, to_dict(cfg), str(out), stages=spec.stages(cfg))
        job.owners = [owner] if owner is not None else []
        if not force and (out / spec.marker).is_file():
            job.state, job.fraction, job.stage = DONE, 1.0, job.stages[-1]
            job.started = job.finished = time.time()
            with self._lock:
                job.id = self._free_id(key)
                self._jobs[job.id], self._latest[key] = job, job.id
            return job.id
        self._check_quota(owner)
        # Written before the job is registered: a failed write leaves no job behind.
        try:
            write_json(
                out / "job.json", {"kind": kind, "task": spec.task_path, "config": to_dict(cfg)}
            )
        except OSError as err:
            raise JobSubmitError(f"cannot queue the {kind} job: {err}") from err
        with self._lock:
            if (shared := self._join(key, owner)) is not None:
                return shared
            job.id = self._free_id(key)
            self._jobs[job.id], self._cancel[job.id] = job, threading.Event()
            self._latest[key] = job.id
        self._queue.put(job.id)
        return job.id

    def _join(self, key: str, owner: str | None) -> str | None:
        """(Under the lock.) The id of the newest job of `key` when a new submit shares it, with
        `owner` added to its owners; None when it ended or was cancelled (even while still
        running: it stops, and would end "cancelled" for the newcomer too)."""
        job = self._jobs.get(self._latest.get(key, key))
        if job is None or not job.active or self._cancel[job.id].is_set():
            return None
        if owner is not None and owner not in job.owners:
            job.owners.append(owner)
        return job.id

    def _free_id(self, key: str) -> str:
        """(Under the lock.) The id of a new job of `key`: the key itself, unless a job of that
        id is still active (a cancelled one stopping), then the next free generation `KEY.N`."""
        job_id, n = key, 1
        while (job := self._jobs.get(job_id)) is not None and job.active:
            n += 1
            job_id = f"{key}.{n}"
        return job_id

    def current(self, kind: str, cfg: RunConfig) -> JobStatus:
        """The newest job of `cfg` and `kind` this queue knows (a fresh generation rather than
        the cancelled one it follows), else a finished one on disk; KeyError when there is none.
        Submits nothing: for a page that only shows what was asked for, on every poll (an image
        folder's listing is reused for FINGERPRINT_SECONDS while its folders are unchanged)."""
        from .data import FINGERPRINT_SECONDS

        key = job_key(kind, cfg, FINGERPRINT_SECONDS)
        with self._lock:
            job_id = self._latest.get(key, key)
        return self.status(job_id)

    def status(self, job_id: str) -> JobStatus:
        with self._lock:
            if job_id in self._jobs:
                return self._jobs[job_id].copy()
        return self._from_disk(job_id)

    def _from_disk(self, job_id: str) -> JobStatus:
        out = self.out_dir(job_id)
        meta = out / "job.json"
        if not meta.is_file():
            raise KeyError(f"unknown job {job_id!r}")
        info = json.loads(meta.read_text())
        kind = info["kind"]
        done = kind in self.kinds and (out / self.kinds[kind].marker).is_file()
        return JobStatus(
            job_id,
            kind,
            info["config"],
            str(out),
            state=DONE if done else FAILED,
            fraction=1.0 if done else 0.0,
            error=None if done else "interrupted (no result on disk)",
        )

    def _check_quota(self, owner: str | None) -> None:
        with self._lock:
            active = [j for j in self._jobs.values() if j.active]
            waiting = sum(j.state == QUEUED for j in active)
            mine = sum(owner in j.owners for j in active) if owner is not None else 0
        if self.max_queued is not None and waiting >= self.max_queued:
            raise QueueFull(
                f"the job queue is full ({waiting} jobs waiting); try again when one finishes"
            )
        if owner is not None and self.max_per_owner is not None and mine >= self.max_per_owner:
            raise QueueFull(
                f"you already have {mine} job(s) queued or running (at most "
                f"{self.max_per_owner}); wait for one to finish or cancel it"
            )

    def cancel(self, job_id: str, owner: str | None = None) -> bool:
        """Stop an active job; True if this call stopped it or withdrew `owner` from it. With an
        `owner`, only a job of theirs: if others share it, it goes on for them."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not job.active:
                return False
            if owner is not None:
                if owner not in job.owners:
                    return False
                job.owners.remove(owner)
                if job.owners:
                    return True
            self._cancel[job_id].set()
            if job.state == QUEUED:
                job.state, job.finished = CANCELLED, time.time()
            return True

    def jobs(self) -> list[JobStatus]:
        with self._lock:
            return sorted((j.copy() for j in self._jobs.values()), key=lambda j: -j.submitted)

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.05) -> JobStatus:
        """Block until the job leaves the queue and the worker (for scripts and tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (job := self.status(job_id)).active:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout} s")
            time.sleep(poll)
        return job

    def _progress(self, job_id: str) -> Progress:
        cancel = self._cancel[job_id]

        def report(stage: str, frac: float) -> None:
            if cancel.is_set():
                raise JobCancelled(job_id)
            with self._lock:
                job = self._jobs[job_id]
                frac = min(max(float(frac), 0.0), 1.0)
                job.stage, job.stage_fraction = stage, frac
                if stage in job.stages:
                    job.fraction = max(
                        job.fraction, (job.stages.index(stage) + frac) / len(job.stages)
                    )

        return report

    def _work(self) -> None:
        """Serve the queue forever. Any exception while handling one job (the runner, a kind no
        longer registered, the bookkeeping itself) fails that job with the reason and the loop
        goes on: a dead worker would leave every later job queued for good."""
        while True:
            job_id = self._queue.get()
            try:
                self._run_one(job_id)
            except Exception as err:
                logger.warning("worker failed on job %s: %s", job_id, traceback.format_exc())
                self._fail(job_id, f"{type(err).__name__}: {err}")

    def _claim(self, job: JobStatus) -> threading.Event | None:
        """Mark queued `job` running once no other job runs in its folder (an older generation
        of its key, cancelled and still stopping: with several workers the two would write one
        folder at once; with one worker it has always stopped already). Returns the event to
        set when `job` stops, or None when `job` was cancelled meanwhile."""
        while True:
            with self._lock:
                if job.state != QUEUED:
                    return None
                busy = self._busy.get(job.out_dir)
                if busy is None:
                    self._busy[job.out_dir] = stopped = threading.Event()
                    job.state, job.started = RUNNING, time.time()
                    return stopped
            busy.wait()

    def _run_one(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs[job_id]
        stopped = self._claim(job)
        if stopped is None:
            return
        try:
            try:
                state, error = self.runner.run(
                    self.kind(job.kind),
                    job.copy(),
                    self.store,
                    self._progress(job_id),
                    self._cancel[job_id],
                )
            except Exception as err:  # a runner fault fails this job, never the worker
                logger.warning("runner failed on job %s: %s", job_id, traceback.format_exc())
                state, error = FAILED, f"{type(err).__name__}: {err}"
            if state not in (DONE, FAILED, CANCELLED):
                state, error = FAILED, f"the runner returned an unknown job state {state!r}"
            with self._lock:
                job.state, job.error, job.finished = state, error, time.time()
                if state == DONE:
                    job.fraction, job.stage_fraction = 1.0, 1.0
        finally:  # the folder is free for the next generation, whatever happened
            with self._lock:
                self._busy.pop(job.out_dir, None)
            stopped.set()
        self._after_job(job)

    def _fail(self, job_id: str, error: str) -> None:
        """Mark `job_id` failed unless it already ended; never raises (the worker's last resort)."""
        try:
            with self._lock:
                job = self._jobs.get(job_id)
                if job is not None and job.active:
                    job.state, job.error, job.finished = FAILED, error, time.time()
        except Exception:
            logger.exception("could not mark job %s failed", job_id)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    raise SystemExit(worker_main(sys.argv[1:]))
