"""Runs and jobs: the settings as a RunConfig, the job backend, submitting, following and
cancelling this session's job, and the finished runs on disk."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tmu.artifacts import default_root
from tmu.config import ConfigError, RunConfig, from_dict
from tmu.jobs import JobQueue, JobStatus, ProcessRunner

from .forget import check_forget, forget_spec
from .state import Key, State

QUICK = {
    "train": {"epochs": 2},
    "twin": {"min_size": 50, "max_epochs": 2},
    "predictor": {"epochs": 20, "folds": 2},
}
"""The quick profile (tests, live demos on slow machines): fewer epochs everywhere."""

_backends: dict[str, JobQueue] = {}
_lock = threading.Lock()


def backend(root: str | Path | None = None) -> JobQueue:
    """The process-wide job backend for a store root (default $TMU_HOME or ./runs): a FIFO queue
    whose jobs each run in a worker process (with every job kind registered so far)."""
    root = Path(root if root is not None else default_root()).resolve()
    with _lock:
        if str(root) not in _backends:
            _backends[str(root)] = JobQueue(root, runner=ProcessRunner())
        return _backends[str(root)]


def make_config(state: State, forget: str | None = None) -> RunConfig:
    """The RunConfig of the current settings (raises ConfigError / ValueError on a bad one)."""
    values = {
        "dataset": state[Key.DATASET],
        "model": state[Key.MODEL],
        "seed": int(state[Key.SEED]),
        "forget": forget or str(forget_spec(state)),
        "methods": list(state[Key.METHODS]),
        "gold_seeds": int(state[Key.GOLD_SEEDS]),
        "device": state[Key.DEVICE],
    }
    if state[Key.QUICK]:
        values.update(QUICK)
    return from_dict(RunConfig, values)


def device_options() -> dict[str, str]:
    """Device value -> label, from what this backend's machine has (CPU, or each GPU's name)."""
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
    try:
        job_id = (be or backend()).submit(make_config(state))
    except (ConfigError, ValueError) as err:
        return None, str(err)
    state[Key.JOB] = job_id
    return job_id, None


def current_job(state: State, be: JobQueue | None = None) -> JobStatus | None:
    """This session's last submitted job, or None."""
    job_id = state.get(Key.JOB)
    if not job_id:
        return None
    try:
        return (be or backend()).status(job_id)
    except KeyError:
        return None


def cancel_job(state: State, be: JobQueue | None = None) -> bool:
    """Cancel this session's job; True if it was active."""
    job_id = state.get(Key.JOB)
    return bool(job_id) and (be or backend()).cancel(job_id)


def run_label(path: Path) -> str:
    cfg = json.loads((Path(path) / "config.json").read_text())
    return (
        f"{cfg['dataset']} · {cfg['forget'][:40]} · {'+'.join(cfg['methods'])} · "
        f"{cfg['gold_seeds']} gold · seed {cfg['seed']} · {Path(path).name[:6]}"
    )


def finished_runs(be: JobQueue | None = None) -> list[Path]:
    return (be or backend()).finished("run")


def current_run(state: State, be: JobQueue | None = None) -> Path | None:
    """The run the result pages show: the one picked (or just finished) in this session, else the
    newest finished one on disk (so a closed tab loses nothing)."""
    runs = finished_runs(be)
    picked = state.get(Key.RUN_PATH)
    if picked and Path(picked) in runs:
        return Path(picked)
    return runs[0] if runs else None
