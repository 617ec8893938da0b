"""Runs and jobs: the settings as a RunConfig, the job backend, submitting, following and
cancelling this session's job, and the finished runs on disk."""

from __future__ import annotations

import json
import logging
import os
import threading
from functools import lru_cache
from pathlib import Path

from tmu.artifacts import clean_imported, default_root
from tmu.budget import budget_from_env
from tmu.config import ConfigError, RunConfig, from_dict
from tmu.data import FINGERPRINT_SECONDS, IMPORTED
from tmu.jobs import CANCELLED, FAILED, JobQueue, JobStatus, ProcessRunner, Runner, job_key
from tmu.models import apply_recipe
from tmu.scenarios import QUICK, merge
from tmu.unlearn import METHODS

from .data import data_root, dataset_label
from .forget import check_forget, forget_spec
from .state import Key, State
from .uploads import check_weights, weights_in_use


_backends: dict[str, JobQueue] = {}  # by store root and backend settings
_lock = threading.Lock()
events = logging.getLogger("dashboard.events")  # load-test diagnostics (dashboard.telemetry)


class BackendUnavailable(ValueError):
    """The configured job backend cannot be used (a bad TMU_BACKEND, a Ray cluster that is down
    or refuses our token); the message says what to do."""


def make_runner() -> Runner:
    """The runner `TMU_BACKEND` names: `local` (default; a worker process per job on this
    machine) or `ray` (the long-lived workers of the Ray cluster at `TMU_RAY_ADDRESS`, started
    separately: never from inside a Streamlit rerun, whose thread it would die with)."""
    kind = os.environ.get("TMU_BACKEND", "local").strip().lower()
    if kind == "local":
        return ProcessRunner()
    if kind == "ray":
        address = os.environ.get("TMU_RAY_ADDRESS", "").strip()
        if not address:
            raise BackendUnavailable("TMU_BACKEND=ray needs TMU_RAY_ADDRESS=HOST:PORT")
        from tmu.ray_backend import RayRunner

        try:
            return RayRunner(address)
        except ValueError as err:  # unreachable, refused token, malformed address
            raise BackendUnavailable(str(err)) from None
    raise BackendUnavailable(f"TMU_BACKEND={kind!r} is unknown; use local or ray")


def backend(root: str | Path | None = None) -> JobQueue:
    """The process-wide job backend for a store root (default $TMU_HOME or ./runs): a FIFO queue
    whose jobs run on `make_runner()`'s workers (with every job kind registered so far), within
    the store budget `TMU_MAX_STORE_GB`. Its start also removes the day-old folders of crashed
    imports and uploads from the data root. Raises BackendUnavailable while the configured
    backend cannot be reached or the budget is malformed (tried again next call)."""
    root = Path(root if root is not None else default_root()).resolve()
    key = "|".join(
        [str(root), *(os.environ.get(k, "") for k in ("TMU_BACKEND", "TMU_RAY_ADDRESS"))]
    )
    with _lock:
        if key not in _backends:
            try:
                store_budget = budget_from_env()
            except ValueError as err:
                raise BackendUnavailable(str(err)) from None
            clean_imported(data_root() / IMPORTED)
            _backends[key] = JobQueue(
                root,
                runner=make_runner(),
                max_queued=int(os.environ.get("TMU_MAX_QUEUED", "50")),
                max_per_owner=int(os.environ.get("TMU_MAX_JOBS_PER_VISITOR", "3")),
                max_store_bytes=store_budget,
            )
        return _backends[key]


def backend_error() -> str | None:
    """Why the job backend cannot be used now, or None when it can."""
    try:
        backend()
    except BackendUnavailable as err:
        return str(err)
    return None


def backend_info(be: JobQueue | None = None) -> dict:
    """Where jobs run, for the Run page: `backend` (local | ray), the device or the cluster's
    GPUs and their use, the workers; `error` when the cluster does not answer."""
    try:
        return (be or backend()).describe()
    except Exception as err:  # a cluster that went down after we connected
        return {"backend": os.environ.get("TMU_BACKEND", "local"), "error": str(err)}


def make_config(state: State, forget: str | None = None) -> RunConfig:
    """The RunConfig of the current settings (raises ConfigError / ValueError on a bad one)."""
    methods = list(state[Key.METHODS])
    rate = state.get(Key.RATE_RULE) and any(METHODS[m].needs_predictor for m in methods)
    values = {
        "dataset": state[Key.DATASET],
        "model": state[Key.MODEL],
        "recipe": state.get(Key.RECIPE, "standard"),
        "seed": int(state[Key.SEED]),
        "forget": forget or str(forget_spec(state)),
        "methods": methods,
        "gold_seeds": int(state[Key.GOLD_SEEDS]),
        "device": state[Key.DEVICE],
        "split": {
            "holdout": float(state.get(Key.HOLDOUT, 0.2)),
            "label_noise": float(state.get(Key.LABEL_NOISE, 0.0)),
        },
        "predictor": {"compare_rules": ["rate"] if rate else []},
    }
    if state[Key.QUICK]:
        values = merge(values, QUICK)
    if weights := weights_in_use(state):
        values["original_weights"] = weights
    return from_dict(RunConfig, apply_recipe(values))


def device_options(info: dict | None = None) -> dict[str, str]:
    """Device value -> label, from what the backend's workers have: this machine (CPU, or each
    GPU's name), or a Ray worker's GPUs (`info`: backend_info())."""
    if info is not None and info.get("backend") == "ray":
        gpus = [g["name"] for w in info.get("workers", []) for g in w.get("gpus", [])][:1]
        out = {"auto": f"auto ({gpus[0] if gpus else 'the worker’s CPU'})", "cpu": "CPU"}
        if gpus:
            out["cuda"] = f"cuda ({gpus[0]})"
        return out
    import torch
    from tmu.models import device_label, resolve_device

    out = {"auto": f"auto ({device_label(resolve_device('auto'))})", "cpu": "CPU"}
    for i in range(torch.cuda.device_count()):
        out[f"cuda:{i}"] = f"cuda:{i} ({torch.cuda.get_device_name(i)})"
    return out


def submit_run(state: State, be: JobQueue | None = None) -> tuple[str | None, str | None]:
    """Submit the current settings as a run job; (job id, None) or (None, error message)."""
    if not state[Key.METHODS]:
        return None, "choose at least one method"
    check = check_forget(state)
    if check.error:
        return None, f"invalid forget set: {check.error}"
    if bad := check_weights(state):
        return None, f"the uploaded original model cannot be used: {bad}"
    try:
        cfg = make_config(state)
    except (ConfigError, ValueError) as err:
        return None, str(err)
    job_id, error = submit_config(state, cfg, be)
    if job_id is not None:
        state[Key.JOB] = job_id
    return job_id, error


def submit_config(
    state: State, cfg: RunConfig, be: JobQueue | None = None, kind: str = "run"
) -> tuple[str | None, str | None]:
    """Submit a ready config (the Tour's; or a job of another `kind`) for this tab, its owner:
    within its quota, cancellable by it alone; (job id, None) or (None, message)."""
    try:
        be = be or backend()
        job_id = be.submit(cfg, kind=kind, owner=state.get(Key.VISITOR))
    except (ConfigError, ValueError, OSError) as err:  # QueueFull; OSError: the disk is full
        events.info("refused %s for visitor=%s: %s", kind, state.get(Key.VISITOR), err)
        return None, str(err)
    events.info("submit %s %s visitor=%s", kind, job_id, state.get(Key.VISITOR))
    if kind == "run":
        out = be.status(job_id).out_dir
        state[Key.MY_RUNS] = [p for p in state.get(Key.MY_RUNS, []) if p != out] + [out]
    return job_id, None


# A tab's side jobs (embedding, estimate, hardness): one of each kind, remembered in its state
# as {kind: {"key": job key, "id": job id or None, "error": why refused, "cancelled": bool}}.


def submit_side_job(
    state: State, kind: str, cfg: RunConfig, be: JobQueue | None = None
) -> str | None:
    """Submit this tab's job of `kind` for `cfg` (from a button callback, or once when a page
    first needs it: later reruns only read it, `side_job`). A job of this kind the tab asked for
    other settings is given up (the tab withdraws; it goes on only for other tabs that share it).
    Returns why nothing was queued (the queue or the tab's quota full, the disk full), which the
    page shows instead of an exception; the refusal is remembered too."""
    be = be or backend()
    key, jobs = job_key(kind, cfg, FINGERPRINT_SECONDS), dict(state.get(Key.SIDE_JOBS, {}))
    old = jobs.get(kind)
    if old and old["id"] and old["key"] != key:
        be.cancel(old["id"], owner=state.get(Key.VISITOR))
    job_id, error = submit_config(state, cfg, be, kind)
    jobs[kind] = {"key": key, "id": job_id, "error": error, "cancelled": False}
    state[Key.SIDE_JOBS] = jobs
    return error


def side_job_asked(state: State, kind: str, cfg: RunConfig) -> bool:
    """Whether this tab asked for its job of `kind` with these settings (`cfg`)."""
    mine = state.get(Key.SIDE_JOBS, {}).get(kind)
    return bool(mine) and mine["key"] == job_key(kind, cfg, FINGERPRINT_SECONDS)


def side_job(state: State, kind: str, cfg: RunConfig, be: JobQueue | None = None):
    """The job of `kind` for `cfg` as this tab sees it; submits nothing. The one it asked for
    (refused: a FAILED status whose error says why; withdrawn by this tab: CANCELLED), else the
    newest any tab asked for or a finished one on disk; None when there is none."""
    be = be or backend()
    mine = state.get(Key.SIDE_JOBS, {}).get(kind)
    if side_job_asked(state, kind, cfg):
        if mine["error"]:
            out, why = str(be.out_dir(mine["key"])), f"not queued: {mine['error']}"
            return JobStatus(mine["key"], kind, {}, out, state=FAILED, error=why)
        try:
            job = be.status(mine["id"])
        except KeyError:  # a job this server no longer knows (its folder evicted)
            return None
        if mine["cancelled"] and job.active:  # goes on for another tab
            job.state, job.error = CANCELLED, "cancelled in this tab"
        return job
    try:
        return be.current(kind, cfg)
    except KeyError:
        return None


def owns(state: State, job: JobStatus | None) -> bool:
    """Whether `job` is active and this tab is one of its owners (it may cancel it)."""
    return job is not None and job.active and state.get(Key.VISITOR) in job.owners


def cancel_side_job(state: State, kind: str, be: JobQueue | None = None) -> bool:
    """Button callback: withdraw this tab from its job of `kind` (it stops unless another tab
    shares it); True if the tab was one of its owners. The page shows it cancelled."""
    mine = state.get(Key.SIDE_JOBS, {}).get(kind)
    if not mine or not mine["id"]:
        return False
    done = (be or backend()).cancel(mine["id"], owner=state.get(Key.VISITOR))
    if done:
        state[Key.SIDE_JOBS] = {**state[Key.SIDE_JOBS], kind: {**mine, "cancelled": True}}
    return done


def job_status(job_id: str | None, be: JobQueue | None = None) -> JobStatus | None:
    """A job's status by id, or None (no id, or a job this server no longer knows)."""
    if not job_id:
        return None
    try:
        return (be or backend()).status(job_id)
    except KeyError:
        return None


def current_job(state: State, be: JobQueue | None = None) -> JobStatus | None:
    """This session's last submitted job, or None."""
    return job_status(state.get(Key.JOB), be)


def cancel_job(state: State, be: JobQueue | None = None) -> bool:
    """Cancel this session's job; True if it was active."""
    job_id = state.get(Key.JOB)
    return bool(job_id) and (be or backend()).cancel(job_id, owner=state.get(Key.VISITOR))


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime_ns, size) of a job's result file, for the cache keys of what is read from it
    (a file written again, by a later generation of its job, is read afresh); None when it is
    gone (evicted from the store since)."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def run_label(path: Path) -> str:
    """How the run pickers show a finished run (its config read once per folder: the pickers
    label every run on every rerun)."""
    return _run_label(str(path), file_stamp(Path(path) / "config.json"))


@lru_cache(maxsize=1024)
def _run_label(path: str, stamp: tuple[int, int, int] | None) -> str:
    try:
        cfg = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):  # evicted or damaged meanwhile: still a label, never an error
        return f"run {Path(path).name[:6]} (its config is gone)"
    return (
        f"{dataset_label(cfg['dataset'])} · {cfg['forget'][:40]} · {'+'.join(cfg['methods'])} · "
        f"{cfg['gold_seeds']} gold · seed {cfg['seed']} · {Path(path).name[:6]}"
    )


def finished_runs(be: JobQueue | None = None, state: State | None = None) -> list[Path]:
    """Finished run folders: this tab's own first (newest first), then everyone else's."""
    runs = (be or backend()).finished("run")
    mine = [Path(p) for p in reversed((state or {}).get(Key.MY_RUNS, []))]
    own = [p for p in mine if p in runs]
    return own + [p for p in runs if p not in own]


def current_run(state: State, be: JobQueue | None = None) -> Path | None:
    """The run the result pages show: the one picked (or just finished) in this session, else the
    newest finished one on disk (so a closed tab loses nothing). It is pinned for this tab, with
    the weights it uploaded: the store budget never evicts what a tab is showing."""
    be = be or backend()
    runs = finished_runs(be, state)
    picked = state.get(Key.RUN_PATH)
    run = Path(picked) if picked and Path(picked) in runs else (runs[0] if runs else None)
    be.pin(state.get(Key.VISITOR), [run, weights_in_use(state)])
    return run
