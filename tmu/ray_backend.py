"""The Ray job backend: the same jobs as `tmu.jobs`, run by long-lived workers on a Ray cluster.

`RayRunner` is one more `tmu.jobs.Runner`; `JobQueue(root, runner=RayRunner(address))` keeps the
job table, de-duplication and cancel on the caller's side (the dashboard or the CLI), and hands
each job to a *worker*: a named, detached Ray actor (`tmu-worker-VERSION-I` in namespace `tmu`)
that asks Ray for one GPU when the cluster has any. A worker lives on between jobs and between
clients, so CUDA, cuDNN's autotuner, the imported libraries and the run store it keeps next to
the work stay warm: a second request pays no start-up.

How a job travels:

* The client connects to a cluster started separately (`ray start --head`; never from inside a
  Streamlit rerun, whose thread the cluster would die with). `connect` first checks that the
  address answers and that the cluster accepts our token, so a wrong address or token is a clear
  error within seconds instead of Ray's 20-second retry loop.
* The code travels with the job (Ray's `py_modules`: the client's `tmu` package, every job
  kind's task included), so a cluster needs only the requirements installed, not this
  repository; workers of another code version are replaced when idle.
* The worker runs the job kind's task (`module:function`, as the process runner does) on a thread
  and keeps its progress; the client polls it every 0.2 s and forwards every stage change. Cancel
  sets a flag that the task's progress callback raises on, between two batches: the job stops
  there and the worker stays usable.
* Results come back through Ray: the finished job folder as one tar.gz object, unpacked into the
  client's store with the folder's marker file written last. When the client's store is the
  worker's too (`TMU_HOME` on shared storage, recognised by the store's `.store-id`), the worker
  writes the folder in place and nothing is copied. The costly models (original, golds, twin)
  are cached in the worker's store, where the work runs (`TMU_HOME` of the worker's node, or
  `~/.cache/tmu/worker`).

Ray's token authentication: clients need `RAY_AUTH_MODE=token` and the cluster's token (in
`~/.ray/auth_token`, `RAY_AUTH_TOKEN_PATH` or `RAY_AUTH_TOKEN`); the README's "Running on a GPU
server or cluster" gives the commands.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import os
import queue
import socket
import tarfile
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path

from .jobs import (
    CANCELLED,
    DONE,
    FAILED,
    RUNNING,
    JobCancelled,
    JobKind,
    JobStatus,
    Runner,
    error_text,
)

logger = logging.getLogger(__name__)

NAMESPACE = "tmu"
WORKER_PREFIX = "tmu-worker-"
PACKAGES = ("tmu",)  # the library alone: every job kind is a task of tmu (tmu.tasks)
REPO_ROOT = Path(__file__).resolve().parents[1]
STORE_ID = ".store-id"
CLIENT_SCHEME = "ray://"


class RayBackendError(ValueError):
    """The Ray cluster cannot be used (unreachable, refused our token, not installed); the
    message names the address and what to do."""


# ---------------------------------------------------------------- connecting


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (a cluster's GCS address, `ray start --head --port PORT`, from a node of the
    cluster) or `ray://HOST:PORT` (its Ray Client server, port 10001 by default, from anywhere
    else) -> (host, port)."""
    host, sep, port = str(text).strip().removeprefix(CLIENT_SCHEME).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RayBackendError(
            f"Ray address {text!r} is malformed; use HOST:PORT (e.g. 127.0.0.1:6379) or "
            "ray://HOST:PORT"
        )
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = 3.0) -> None:
    """Raise RayBackendError unless something accepts TCP connections at `address`."""
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        raise RayBackendError(
            f"cannot reach the Ray cluster at {address} ({err.strerror or err}); is its head "
            "running (`ray start --head --port PORT`) and is the address right?"
        ) from None


def check_token(address: str, timeout: float = 5.0) -> None:
    """Raise RayBackendError when the cluster at `address` refuses our authentication token (a
    single cheap request; ray.init alone would retry for 20 s and then say only "failed")."""
    try:
        from ray._raylet import GcsClient
    except ImportError:  # a Ray without this private client: ray.init's own error will do
        return
    try:
        GcsClient(address=address).internal_kv_get(b"tmu-probe", None, timeout=timeout)
    except Exception as err:
        if "auth" in type(err).__name__.lower() or "InvalidAuthToken" in str(err):
            mode = os.environ.get("RAY_AUTH_MODE", "disabled")
            raise RayBackendError(
                f"the Ray cluster at {address} refused our authentication token "
                f"(RAY_AUTH_MODE={mode}): set RAY_AUTH_MODE=token and give the cluster's token "
                "in ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN"
            ) from None
        logger.info("token probe of %s inconclusive: %s", address, err)


def package_dirs() -> list[str]:
    return [str(REPO_ROOT / p) for p in PACKAGES if (REPO_ROOT / p / "__init__.py").is_file()]


def code_version() -> str:
    """A hash of the Python sources the workers run (a worker of another version is replaced)."""
    h = hashlib.sha256()
    for d in package_dirs():
        for f in sorted(Path(d).rglob("*.py")):
            h.update(str(f.relative_to(REPO_ROOT)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:10]


_connected: str | None = None
_connect_lock = threading.Lock()


def connect(address: str) -> None:
    """Connect this process to the Ray cluster at `address` (once; a second address is an
    error). Never starts a cluster."""
    global _connected
    with _connect_lock:
        if _connected == address:
            return
        if _connected is not None:
            raise RayBackendError(
                f"this process is connected to the Ray cluster at {_connected}; cannot also "
                f"connect to {address}"
            )
        try:
            import ray
        except ImportError:
            raise RayBackendError(
                "the Ray backend needs the `ray` package: pip install -r requirements.txt"
            ) from None
        check_reachable(address)
        if not address.startswith(CLIENT_SCHEME):  # the client server checks its own way
            check_token(address)
        try:
            ray.init(
                address=address,
                namespace=NAMESPACE,
                log_to_driver=False,
                logging_level=logging.WARNING,
                runtime_env={"py_modules": package_dirs(), "excludes": ["__pycache__", "*.pyc"]},
            )
        except (ConnectionError, RuntimeError) as err:
            raise RayBackendError(
                f"cannot connect to the Ray cluster at {address}: {err}"
            ) from None
        _connected = address


# ---------------------------------------------------------------- stores and job folders


def store_id(root: str | Path) -> str:
    """The store's identity (`ROOT/.store-id`, made on first use): a worker that sees the same
    file at the same path shares the client's store."""
    path = Path(root) / STORE_ID
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        tmp.write_text(uuid.uuid4().hex)
        try:
            os.link(tmp, path)  # atomic: two clients racing agree on one id
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def pack_folder(folder: Path) -> bytes:
    """The folder's files as a gzipped tar (paths relative to the folder)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                tar.add(f, arcname=str(f.relative_to(folder)))
    return buf.getvalue()


def unpack_folder(data: bytes, folder: Path, marker: str) -> None:
    """Unpack `pack_folder` output into `folder`, every file by rename, `marker` last (a folder
    with its marker is complete, as for a local job)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.") as tmp:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        files = sorted(p for p in Path(tmp).rglob("*") if p.is_file())
        for f in sorted(files, key=lambda p: p.name == marker):
            dest = folder / f.relative_to(tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, dest)


# ---------------------------------------------------------------- the worker (a Ray actor)


class Worker:
    """One long-lived worker: runs one job at a time on a thread, keeps its progress for the
    client to poll, stops it on cancel. Used as a threaded Ray actor (`ray.remote(Worker)`), so
    `poll`, `cancel` and `info` answer while a job runs; plain Python otherwise (tests)."""

    def __init__(self, version: str, store_root: str | None = None):
        self.version_ = version
        root = store_root or os.environ.get("TMU_HOME") or Path.home() / ".cache/tmu/worker"
        self.root = Path(root).resolve()
        self.jobs: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.done = 0

    def version(self) -> str:
        return self.version_

    def warm(self) -> str:
        """Import torch, initialise the device and keep loaded datasets in memory (called once
        when the worker is created)."""
        import torch

        from .data import keep_datasets_warm
        from .models import device_label, resolve_device

        keep_datasets_warm()
        if torch.cuda.is_available():
            torch.backends.cudnn.benchmark = True
            torch.zeros(1, device="cuda")
        return device_label(resolve_device("auto"))

    def info(self) -> dict:
        import torch

        gpus = [
            {
                "name": torch.cuda.get_device_name(i),
                "memory_used": torch.cuda.memory_reserved(i),
                "memory_total": torch.cuda.get_device_properties(i).total_memory,
            }
            for i in range(torch.cuda.device_count())
        ]
        with self.lock:
            busy = any(j["state"] == RUNNING for j in self.jobs.values())
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "store": str(self.root),
            "gpus": gpus,
            "busy": busy,
            "jobs_done": self.done,
            "version": self.version_,
            "torch_threads": torch.get_num_threads(),
        }

    def start(
        self, job_id: str, task_path: str, config: dict, client_root: str, client_store: str
    ) -> bool:
        """Start the job on a thread; returns whether the client's store is shared (then the job
        folder is written in place, under the client's root)."""
        shared = (Path(client_root) / STORE_ID).is_file() and store_id(client_root) == client_store
        root = Path(client_root) if shared else self.root
        out = root / "jobs" / job_id
        job = {
            "state": RUNNING,
            "events": [],
            "error": None,
            "cancel": threading.Event(),
            "out": out,
            "shared": shared,
        }
        with self.lock:
            self.jobs[job_id] = job
        threading.Thread(
            target=self._run,
            args=(job, task_path, config, root),
            name=f"tmu-job-{job_id}",
            daemon=True,
        ).start()
        return shared

    def _run(self, job: dict, task_path: str, config: dict, root: Path) -> None:
        from .artifacts import Store
        from .config import RunConfig, from_dict

        last = [0.0, None]

        def progress(stage: str, frac: float) -> None:
            if job["cancel"].is_set():
                raise JobCancelled(stage)
            now = time.monotonic()
            if stage != last[1] or now - last[0] > 0.1 or frac >= 1.0:
                last[0], last[1] = now, stage
                with self.lock:
                    job["events"].append((stage, float(frac)))

        try:
            module, _, name = task_path.partition(":")
            task = getattr(importlib.import_module(module), name)
            job["out"].mkdir(parents=True, exist_ok=True)
            task(from_dict(RunConfig, config), Store(root), job["out"], progress)
            state, error = DONE, None
        except JobCancelled:
            state, error = CANCELLED, None
        except Exception as err:  # reported to the client; the worker lives on
            logger.warning("job failed: %s", traceback.format_exc())
            state, error = FAILED, error_text(err)
        with self.lock:
            job["state"], job["error"] = state, error
            self.done += 1

    def poll(self, job_id: str) -> dict:
        """The job's state and the progress events since the last poll."""
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return {"state": FAILED, "events": [], "error": "the worker does not know the job"}
            events, job["events"] = job["events"], []
            return {"state": job["state"], "events": events, "error": job["error"]}

    def cancel(self, job_id: str) -> None:
        with self.lock:
            if job_id in self.jobs:
                self.jobs[job_id]["cancel"].set()

    def fetch(self, job_id: str) -> bytes:
        """The finished job folder, packed (only for a client that does not share the store)."""
        return pack_folder(self.jobs[job_id]["out"])

    def release(self, job_id: str) -> None:
        """Forget the job (its folder stays in the worker's store, a cache of finished jobs)."""
        with self.lock:
            self.jobs.pop(job_id, None)


# ---------------------------------------------------------------- the runner (client side)


class RayRunner(Runner):
    """Runs each job on one of `workers` Ray actors (default: one per GPU of the cluster, or
    one when it has none), each asking Ray for `gpus_per_worker` GPUs (default 1 when the cluster
    has GPUs). A JobQueue with this runner runs `parallelism` jobs at once."""

    def __init__(
        self,
        address: str,
        *,
        workers: int | None = None,
        gpus_per_worker: float | None = None,
        poll: float = 0.2,
    ):
        import ray

        connect(address)
        self.address, self.poll_every, self.version = address, poll, code_version()
        cluster_gpus = int(ray.cluster_resources().get("GPU", 0))
        self.gpus = gpus_per_worker if gpus_per_worker is not None else (1 if cluster_gpus else 0)
        self.parallelism = workers or max(cluster_gpus // max(int(self.gpus), 1), 1)
        self._retire_stale()
        self.actors = [self._actor(i) for i in range(self.parallelism)]
        self._warm = [a.warm.remote() for a in self.actors]  # start-up while the user clicks
        self._free: queue.Queue = queue.Queue()
        for a in self.actors:
            self._free.put(a)

    def _actor(self, index: int):
        import ray

        cls = ray.remote(Worker).options(
            name=f"{WORKER_PREFIX}{self.version}-{index}",
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_gpus=self.gpus,
            num_cpus=1,
            max_concurrency=16,
            max_restarts=-1,
        )
        return cls.remote(self.version)

    def _retire_stale(self) -> None:
        """Kill idle workers of another code version (they hold GPUs our workers need)."""
        import ray
        from ray.util import list_named_actors

        for name in list_named_actors():
            if not name.startswith(WORKER_PREFIX) or name.startswith(
                f"{WORKER_PREFIX}{self.version}-"
            ):
                continue
            try:
                actor = ray.get_actor(name, namespace=NAMESPACE)
                if not ray.get(actor.info.remote(), timeout=5)["busy"]:
                    ray.kill(actor)
                    logger.info("retired idle worker %s of another version", name)
            except Exception as err:  # a dying or busy worker: leave it
                logger.info("left worker %s: %s", name, err)

    def describe(self) -> dict:
        """The cluster and its workers, for the dashboard's Run page."""
        import ray

        total, free = ray.cluster_resources(), ray.available_resources()
        workers = []
        for a in self.actors:
            try:
                workers.append(ray.get(a.info.remote(), timeout=2))
            except Exception as err:
                workers.append({"error": f"{type(err).__name__}: {err}"})
        return {
            "backend": "ray",
            "address": self.address,
            "nodes": sum(1 for n in ray.nodes() if n.get("Alive")),
            "gpus": total.get("GPU", 0.0),
            "gpus_in_use": total.get("GPU", 0.0) - free.get("GPU", 0.0),
            "cpus": total.get("CPU", 0.0),
            "workers": workers,
        }

    def run(self, kind: JobKind, job: JobStatus, store, report, cancelled):
        if "<locals>" in kind.task_path:
            return FAILED, f"job kind {kind.name!r}: its task must be a module-level function"
        actor = self._free.get()
        try:
            return self._run_on(actor, kind, job, store, report, cancelled)
        except Exception as err:  # the actor died or Ray failed: this job fails, the next retries
            logger.warning("Ray job %s failed: %s", job.id, traceback.format_exc())
            return FAILED, f"Ray worker error: {type(err).__name__}: {err}"
        finally:
            self._free.put(actor)

    def _run_on(self, actor, kind, job, store, report, cancelled):
        import ray

        shared = ray.get(
            actor.start.remote(
                job.id, kind.task_path, job.config, str(store.root), store_id(store.root)
            ),
            timeout=600,  # a fresh worker imports torch and initialises CUDA first
        )
        asked_cancel = False
        while True:
            if cancelled.is_set() and not asked_cancel:
                ray.get(actor.cancel.remote(job.id), timeout=30)
                asked_cancel = True
            st = ray.get(actor.poll.remote(job.id), timeout=60)
            for stage, frac in st["events"]:
                try:
                    report(stage, frac)
                except JobCancelled:
                    pass  # asked above on the next turn
            if st["state"] != RUNNING:
                break
            time.sleep(self.poll_every)
        try:
            if st["state"] == DONE and not shared:
                unpack_folder(
                    ray.get(actor.fetch.remote(job.id), timeout=600), Path(job.out_dir), kind.marker
                )
        finally:
            actor.release.remote(job.id)
        return st["state"], st["error"]


def shutdown_workers(address: str) -> int:
    """Kill every tmu worker on the cluster (`python -m tmu workers --stop`); returns how many."""
    import ray
    from ray.util import list_named_actors

    connect(address)
    names = [n for n in list_named_actors() if n.startswith(WORKER_PREFIX)]
    for name in names:
        try:
            ray.kill(ray.get_actor(name, namespace=NAMESPACE))
        except ValueError:
            pass
    return len(names)
