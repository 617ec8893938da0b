"""The twin's estimate before a run: how many of the selected forget samples a retrained model
would get wrong, from the twin problem alone (no gold model is trained), computed by a job of
kind `estimate` whose original model, twin and predictor a later run reuses from the store."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tmu.artifacts import Store, write_json
from tmu.config import RunConfig
from tmu.jobs import DONE, JobKind, JobQueue, JobStatus, Progress, job_key, register_job_kind

from .runs import backend, make_config
from .state import State


def estimate_task(cfg: RunConfig, store: Store, out: Path, progress: Progress) -> None:
    """`out/estimate.json`: |D_f|, the twin's hard rate, the expected number gold gets wrong,
    and how many samples TMU's predictor would flip."""
    from tmu.pipeline import decide, load_data, prepare_twin, train_original

    data = load_data(cfg)
    original = train_original(cfg, data, store, progress)
    twin = prepare_twin(cfg, data, original, store, progress)
    decisions = decide(cfg, data, original.model, twin)
    n = len(data.splits.forget)
    write_json(
        out / "estimate.json",
        {
            "forget": n,
            "twin_size": len(twin.forget),
            "twin_hard_rate": 1.0 - twin.predictor.easy_rate,
            "expected_wrong": (1.0 - twin.predictor.easy_rate) * n,
            "predicted_hard": int((~decisions.easy).sum()),
            "rule": twin.predictor.rule,
        },
    )


ESTIMATE = register_job_kind(
    JobKind("estimate", estimate_task, lambda cfg: ["original", "twin"], "estimate.json")
)


def estimate_config(state: State) -> RunConfig:
    """The estimate job's config: the run's, with TMU alone (the twin-tuning it needs)."""
    return dataclasses.replace(make_config(state), methods=("tmu",), twin_tune=())


def estimate(
    state: State, be: JobQueue | None = None, submit: bool = False
) -> tuple[JobStatus | None, dict | None]:
    """The estimate job of the current settings (submitted when `submit`; a finished one is found
    on disk) and, once done, its figures; (None, None) when none was asked for."""
    be = be or backend()
    cfg = estimate_config(state)
    job_id = be.submit(cfg, kind=ESTIMATE.name) if submit else job_key(ESTIMATE.name, cfg)
    try:
        job = be.status(job_id)
    except KeyError:
        return None, None
    if job.state != DONE:
        return job, None
    return job, json.loads((Path(job.out_dir) / "estimate.json").read_text())
