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
* Many clients (dashboards, sweeps) share the workers, each with its own list of free ones: a
  worker knows a job by the client's id and the job's (`CLIENT/JOB`; two clients' identical jobs
  have the same job id), and runs one at a time: a worker busy with any client's job refuses a
  second start, and the client asks its next worker or waits.
* Files the config names by a path of the client's (an `imagefolder:` dataset, an imported one
  included, and `original_weights`) are read in place when the worker sees the very same files
  (same path, sizes and mtimes: one machine, or shared storage); otherwise their bytes travel
  through Ray once per content hash and stay in the worker's store (`ray-inputs/`), the job runs
  on that copy, and its folder (config, report) names them as the client does.
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
import json
import logging
import os
import queue
import re
import shutil
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
_shipped: str | None = None  # code_version() of the code this process sent with ray.init
_connect_lock = threading.Lock()


def connect(address: str) -> None:
    """Connect this process to the Ray cluster at `address` (once; a second address is an
    error). Never starts a cluster."""
    global _connected, _shipped
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
        version = code_version()  # of the files Ray packs now, whatever changes later
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
        _connected, _shipped = address, version


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


# ---------------------------------------------------------------- a job's input files

INPUTS = "ray-inputs"  # WORKER_STORE/ray-inputs/HASH (a folder) or HASH.pt: inputs sent to it
FOLDER, FILE = "folder", "file"  # the kinds of input: an image folder, a weights file
DIGEST = re.compile(r"[0-9a-f]{32}")
_hashes: dict[tuple[str, str, str], str] = {}  # (kind, path, stamp) -> content_hash
_hashes_lock = threading.Lock()


def folder_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative path, path) of every file an image folder's loader reads, sorted: hidden files
    and folders left out, linked folders not descended into, a linked file only where it
    resolves inside the folder (as `tmu.data` reads a folder)."""
    root, out = folder.resolve(), []
    for dirpath, dirnames, filenames in os.walk(folder):  # followlinks=False
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = Path(dirpath) / name
            if name.startswith(".") or not path.is_file():
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                continue
            out.append((path.relative_to(folder).as_posix(), path))
    return sorted(out)


def input_stamp(kind: str, path: Path) -> str:
    """What `path` holds now, from stat alone (relative paths, sizes, mtimes): equal on the
    client and a worker when the worker sees the very same files (one machine, shared storage)."""
    from .data import IMAGEFOLDER_PREFIX, content_fingerprint
    from .models import file_stamp

    if kind == FILE:
        return file_stamp(path)
    if not path.is_dir():
        return "missing"
    return content_fingerprint(f"{IMAGEFOLDER_PREFIX}{path}")


def content_hash(kind: str, path: Path) -> str:
    """A hash of the bytes of a file, or of an image folder's files and their relative paths:
    the name an input is cached under on a worker, checked again there once it arrived."""
    h = hashlib.sha256()
    files = [("", path)] if kind == FILE else folder_files(path)
    for rel, f in files:
        h.update(f"{rel}\0{f.stat().st_size}\0".encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:32]


def cached_hash(kind: str, path: Path, stamp: str) -> str:
    """`content_hash`, computed once per content as the stamp shows it (a client sends the same
    dataset with many jobs)."""
    key = (kind, str(path), stamp)
    with _hashes_lock:
        if key in _hashes:
            return _hashes[key]
    digest = content_hash(kind, path)
    with _hashes_lock:
        if len(_hashes) >= 256:
            _hashes.pop(next(iter(_hashes)))
        _hashes[key] = digest
    return digest


def job_inputs(config: dict) -> list[dict]:
    """The files a job's config names by a path of the client's (an `imagefolder:` dataset, an
    imported NAME included, and `original_weights`), each with the config field and value, the
    absolute path on the client, its stamp and its content hash. A path missing on the client is
    left out: the job then fails on the worker with the loader's message naming it."""
    from .data import IMAGEFOLDER_PREFIX, imagefolder_path

    found = []
    dataset, weights = config.get("dataset") or "", config.get("original_weights")
    if dataset.startswith(IMAGEFOLDER_PREFIX):
        folder = imagefolder_path(dataset, config.get("data_root"))
        found.append(("dataset", dataset, FOLDER, folder))
    if weights:
        found.append(("original_weights", weights, FILE, Path(weights).expanduser()))
    inputs = []
    for field_name, value, kind, path in found:
        path = path.absolute()
        if not (path.is_dir() if kind == FOLDER else path.is_file()):
            continue
        stamp = input_stamp(kind, path)
        inputs.append(
            {
                "field": field_name,
                "value": value,
                "kind": kind,
                "path": str(path),
                "stamp": stamp,
                "hash": cached_hash(kind, path, stamp),
            }
        )
    return inputs


def pack_input(kind: str, path: Path) -> bytes:
    """An input's bytes as they travel: a file as is, an image folder as a gzipped tar of the
    files its loader reads (linked files inside it as their content)."""
    if kind == FILE:
        return path.read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1, dereference=True) as tar:
        for rel, f in folder_files(path):
            tar.add(f, arcname=rel, recursive=False)
    return buf.getvalue()


def restore_names(folder: Path, names: list[tuple[str, str]]) -> None:
    """Rewrite the worker's names of shipped inputs (`imagefolder:/WORKER/ray-inputs/HASH`, the
    path itself) as the client knows them in every JSON file of a finished job folder (config,
    report), each by a temp file and a rename, so that the run names the client's dataset."""
    pairs = [(json.dumps(a)[1:-1], json.dumps(b)[1:-1]) for a, b in names]
    for f in sorted(folder.rglob("*.json")):
        text = f.read_text()
        new = rename_text(text, pairs)
        if new != text:
            tmp = f.with_name(f".{f.name}.{uuid.uuid4().hex}.tmp")
            tmp.write_text(new)
            os.replace(tmp, f)


def rename_text(text: str, names: list[tuple[str, str]]) -> str:
    """`text` with each worker name replaced by the client's, the longest first."""
    for local, client in sorted(names, key=lambda p: -len(p[0])):
        text = text.replace(local, client)
    return text


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
            held = len(self.jobs)  # running, or finished and not yet fetched by its client
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "store": str(self.root),
            "gpus": gpus,
            "busy": busy,
            "jobs_held": held,
            "jobs_done": self.done,
            "version": self.version_,
            "torch_threads": torch.get_num_threads(),
        }

    def start(
        self,
        handle: str,
        task_path: str,
        config: dict,
        client_root: str,
        client_store: str,
        out_dir: str,
        inputs: list[dict] = (),
    ) -> dict:
        """Start job `handle` (CLIENT/JOB: many clients share this worker, and two clients'
        identical jobs have the same job id) on a thread, unless a job runs here already: one
        job at a time, on this worker's GPU.

        Returns {"started": True, "shared": ...}: shared when the worker sees the client's
        store (then it writes the job folder `out_dir` in place); {"busy": True} when another
        job runs (the client tries another worker); {"need": [hash, ...]} when the config names
        files it cannot see and has not been sent (`job_inputs`; the client sends them with
        `receive` and starts again)."""
        with self.lock:
            if any(j["state"] == RUNNING for j in self.jobs.values()):
                return {"busy": True}
            config, names, need = self._localise(config, inputs)
            if need:
                return {"need": need}
            shared = (
                not names
                and (Path(client_root) / STORE_ID).is_file()
                and store_id(client_root) == client_store
            )
            root = Path(client_root) if shared else self.root
            out = Path(out_dir) if shared else self.root / "ray-jobs" / handle_folder(handle)
            if not shared:
                shutil.rmtree(out, ignore_errors=True)  # a folder left by a client that died
            job = {
                "state": RUNNING,
                "events": [],
                "error": None,
                "cancel": threading.Event(),
                "out": out,
                "shared": shared,
                "names": names,
            }
            self.jobs[handle] = job
        threading.Thread(
            target=self._run,
            args=(job, task_path, config, root),
            name=f"tmu-job-{handle}",
            daemon=True,
        ).start()
        return {"started": True, "shared": shared}

    def _localise(self, config: dict, inputs: list[dict]) -> tuple[dict, list, list[str]]:
        """(config with the worker's copies of the inputs it cannot see where the client does,
        the (worker's name, client's name) pairs to restore, the hashes still to be sent)."""
        from .data import IMAGEFOLDER_PREFIX

        config, names, need = dict(config), [], []
        for item in inputs:
            if self._sees(item, config):
                continue
            local = self._input_path(item["hash"], item["kind"])
            if not local.exists():
                need.append(item["hash"])
                continue
            os.utime(local)  # its last use, for whoever prunes the worker's store
            value = f"{IMAGEFOLDER_PREFIX}{local}" if item["kind"] == FOLDER else str(local)
            config[item["field"]] = value
            names += [(value, item["value"]), (str(local), item["path"])]
        return config, names, need

    def _sees(self, item: dict, config: dict) -> bool:
        """Whether the config's own value names, here, the very files the client means (same
        path, same sizes and mtimes): one machine, or the files on storage both share."""
        from .data import imagefolder_path

        value = item["value"]
        if item["kind"] == FOLDER:
            here = imagefolder_path(value, config.get("data_root"))
        else:
            here = Path(value).expanduser()
        path = Path(item["path"])
        return here.absolute() == path and input_stamp(item["kind"], path) == item["stamp"]

    def _input_path(self, digest: str, kind: str) -> Path:
        if not DIGEST.fullmatch(digest) or kind not in (FOLDER, FILE):
            raise ValueError(f"not an input: {digest!r} ({kind!r})")
        return self.root / INPUTS / (digest if kind == FOLDER else f"{digest}.pt")

    def receive(self, digest: str, kind: str, data: bytes) -> str | None:
        """Keep an input a client sent (`pack_input`) under its content hash, checked here, in
        this worker's store, for every later job that names it; None, or why it was refused."""
        dest = self._input_path(digest, kind)
        if dest.exists():
            return None
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{digest}."))
        try:
            got = tmp / "input"
            if kind == FILE:
                got.write_bytes(data)
            else:
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                    tar.extractall(got, filter="data")
            if content_hash(kind, got) != digest:
                return (
                    f"the {'image folder' if kind == FOLDER else 'weights file'} sent to the "
                    f"Ray worker on {socket.gethostname()} changed on the way (its files changed "
                    "while they were sent?); run the job again"
                )
            try:
                os.rename(got, dest)
            except OSError:
                if not dest.exists():  # not another client's identical copy, just in
                    raise
        except (tarfile.TarError, EOFError, OSError) as err:
            return f"the Ray worker on {socket.gethostname()} could not keep an input: {err}"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return None

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
            restore_names(job["out"], job["names"])
            state, error = DONE, None
        except JobCancelled:
            state, error = CANCELLED, None
        except Exception as err:  # reported to the client; the worker lives on
            logger.warning("job failed: %s", traceback.format_exc())
            state, error = FAILED, rename_text(error_text(err), job["names"])
        with self.lock:
            job["state"], job["error"] = state, error
            self.done += 1
            gone = job.get("released", False)
        if gone:
            self._forget(job)

    def poll(self, handle: str) -> dict:
        """The job's state and the progress events since the last poll."""
        with self.lock:
            job = self.jobs.get(handle)
            if job is None:
                return {"state": FAILED, "events": [], "error": "the worker does not know the job"}
            events, job["events"] = job["events"], []
            return {"state": job["state"], "events": events, "error": job["error"]}

    def cancel(self, handle: str) -> None:
        with self.lock:
            if handle in self.jobs:
                self.jobs[handle]["cancel"].set()

    def fetch(self, handle: str) -> bytes:
        """The finished job folder, packed (only for a client that does not share the store)."""
        return pack_folder(self.jobs[handle]["out"])

    def release(self, handle: str) -> None:
        """Forget the job; a folder written for a client that does not share the store was only
        the way back, and goes (the models it trained stay cached in the worker's store)."""
        with self.lock:
            job = self.jobs.get(handle)
            if job is None:
                return
            if job["state"] == RUNNING:  # its client gave up on it: stop it, then forget it
                job["cancel"].set()
                job["released"] = True
                return
            del self.jobs[handle]
        self._forget(job)

    def _forget(self, job: dict) -> None:
        with self.lock:
            for handle, other in list(self.jobs.items()):
                if other is job:
                    del self.jobs[handle]
        if not job["shared"]:
            shutil.rmtree(job["out"], ignore_errors=True)


def actor_gone(err: BaseException) -> bool:
    """Whether `err` says the worker is dead for good (killed: Ray restarts a crashed one)."""
    from ray.exceptions import RayActorError

    return isinstance(err, RayActorError) or "Can't find actor" in str(err)


def handle_folder(handle: str) -> str:
    """A job handle (CLIENT/JOB) as one folder name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", handle)


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
        # the version of the code this process shipped at connect: a second runner of this
        # process names its workers alike, even if the files changed since (Ray ships them once)
        self.address, self.poll_every, self.version = address, poll, _shipped or code_version()
        # Other clients (dashboards, sweeps) share the named workers: a job is known to a worker
        # by this client's id and its job id, never by the job id alone.
        self.client = uuid.uuid4().hex[:12]
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
        """Kill idle workers of another code version (they hold GPUs our workers need); a
        worker that runs a job, or holds a finished one its client has not fetched, stays."""
        import ray
        from ray.util import list_named_actors

        for name in list_named_actors():
            if not name.startswith(WORKER_PREFIX) or name.startswith(
                f"{WORKER_PREFIX}{self.version}-"
            ):
                continue
            try:
                actor = ray.get_actor(name, namespace=NAMESPACE)
                info = ray.get(actor.info.remote(), timeout=5)
                if not info["busy"] and not info.get("jobs_held"):
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
        handle = f"{self.client}/{job.id}"
        try:
            claimed = self._claim(handle, kind, job, store, job_inputs(job.config), cancelled)
        except RayBackendError as err:
            return FAILED, str(err)
        except Exception as err:  # the actor died or Ray failed: this job fails, the next retries
            logger.warning("Ray job %s failed to start: %s", job.id, traceback.format_exc())
            return FAILED, f"Ray worker error: {type(err).__name__}: {err}"
        if claimed is None:
            return CANCELLED, None
        actor, shared = claimed
        try:
            return self._follow(actor, handle, kind, job, shared, report, cancelled)
        except Exception as err:
            logger.warning("Ray job %s failed: %s", job.id, traceback.format_exc())
            return FAILED, f"Ray worker error: {type(err).__name__}: {err}"
        finally:
            self._free.put(actor)

    def _claim(self, handle, kind, job, store, inputs, cancelled):
        """(a worker that started the job, whether it writes in place), or None once the job is
        cancelled before any worker took it. A worker busy with another client's job refuses:
        the next one is asked, and after a round of refusals the job waits a little."""
        refused, revived = 0, 0
        while not cancelled.is_set():
            try:
                actor = self._free.get(timeout=self.poll_every)
            except queue.Empty:
                continue
            try:
                answer = self._start(actor, handle, kind, job, store, inputs)
            except Exception as err:
                if actor_gone(err) and revived < len(self.actors):
                    self._free.put(self._revive(actor))
                    revived += 1
                    continue
                if not actor_gone(err):
                    actor.release.remote(handle)  # stops the job if it started after all
                self._free.put(actor)
                raise
            if answer.get("started"):
                return actor, answer["shared"]
            self._free.put(actor)
            refused += 1
            if refused % len(self.actors) == 0:
                time.sleep(max(self.poll_every * 5, 0.25))
        return None

    def _revive(self, dead):
        """A worker in place of one that was killed (a client of another code version retired
        it while idle, `tmu cluster --stop-workers`): idle workers of other versions retire
        first, to free the GPU it needs."""
        index = self.actors.index(dead)
        logger.info("worker %d of %s is gone; starting a new one", index, self.address)
        self._retire_stale()
        self.actors[index] = self._actor(index)
        return self.actors[index]

    def _start(self, actor, handle, kind, job, store, inputs) -> dict:
        """The worker's answer to starting the job, after sending it the inputs it lacks."""
        import ray

        args = (handle, kind.task_path, job.config, str(store.root), store_id(store.root))
        args += (str(job.out_dir), inputs)
        # a fresh worker imports torch and initialises CUDA first
        answer = ray.get(actor.start.remote(*args), timeout=600)
        if answer.get("need"):
            self._send(actor, answer["need"], inputs)
            answer = ray.get(actor.start.remote(*args), timeout=600)
        if answer.get("need"):
            raise RayBackendError("the Ray worker lost the inputs it was just sent; run it again")
        return answer

    def _send(self, actor, need: list[str], inputs: list[dict]) -> None:
        """Send the worker the inputs it asked for, each through Ray's object store once."""
        import ray

        for item in inputs:
            if item["hash"] in need:
                path = Path(item["path"])
                if input_stamp(item["kind"], path) != item["stamp"]:
                    raise RayBackendError(
                        f"{item['field']} {item['value']!r} changed since the job was submitted; "
                        "run it again"
                    )
                ref = ray.put(pack_input(item["kind"], path))
                sent = actor.receive.remote(item["hash"], item["kind"], ref)
                problem = ray.get(sent, timeout=600)
                if problem:
                    raise RayBackendError(f"{item['field']} {item['value']!r}: {problem}")

    def _follow(self, actor, handle, kind, job, shared, report, cancelled):
        """Forward the running job's progress and cancel; bring its folder back when done."""
        import ray

        asked_cancel = False
        try:
            while True:
                if cancelled.is_set() and not asked_cancel:
                    ray.get(actor.cancel.remote(handle), timeout=30)
                    asked_cancel = True
                st = ray.get(actor.poll.remote(handle), timeout=60)
                for stage, frac in st["events"]:
                    try:
                        report(stage, frac)
                    except JobCancelled:
                        pass  # asked above on the next turn
                if st["state"] != RUNNING:
                    break
                time.sleep(self.poll_every)
            if st["state"] == DONE and not shared:
                unpack_folder(
                    ray.get(actor.fetch.remote(handle), timeout=600), Path(job.out_dir), kind.marker
                )
        finally:
            actor.release.remote(handle)
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
