"""The twin's estimate before a run: how many of the selected forget samples a retrained model
would get wrong, from the twin problem alone (no gold model is trained), computed by a job of
kind `estimate` whose original model, twin and predictor a later run reuses from the store."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np

from tmu.artifacts import Store, atomic_write, write_json
from tmu.config import RunConfig
from tmu.jobs import DONE, JobKind, JobQueue, JobStatus, Progress, job_key, register_job_kind

from .runs import backend, make_config
from .state import Key, State


def estimate_task(cfg: RunConfig, store: Store, out: Path, progress: Progress) -> None:
    """`out/estimate.json`: |D_f|, the twin's hard rate, the expected number gold gets wrong,
    and how many samples TMU's predictor would flip; `out/hardness.npz`: the twin predictor's
    p(hard) of every training sample (ids, p_hard)."""
    from tmu.pipeline import decide, hardness, load_data, prepare_twin, train_original

    data = load_data(cfg)
    original = train_original(cfg, data, store, progress)
    twin = prepare_twin(cfg, data, original, store, progress)
    decisions = decide(cfg, data, original.model, twin)
    p_hard = hardness(cfg, data, original.model, twin)
    buf = io.BytesIO()
    np.savez(buf, ids=data.splits.train, p_hard=p_hard.astype(np.float32))
    atomic_write(out / "hardness.npz", buf.getvalue())
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


def hardness_config(state: State) -> RunConfig:
    """The estimate job whose twin paints the embedding: a random 10 % request on the current
    data (no selection needed: the map is for choosing one)."""
    return dataclasses.replace(
        make_config(state, forget="random:0.1"), methods=("tmu",), twin_tune=()
    )


def hardness_map(
    state: State, be: JobQueue | None = None, submit: bool = False
) -> tuple[JobStatus | None, dict | None]:
    """The hardness job (an estimate of `hardness_config`; submitted when `submit`) and, once
    done, the twin predictor's p(hard) of every training sample ({ids, p_hard})."""
    be = be or backend()
    cfg = hardness_config(state)
    job_id = (
        be.submit(cfg, kind=ESTIMATE.name, owner=state.get(Key.VISITOR))
        if submit
        else job_key(ESTIMATE.name, cfg)
    )
    try:
        job = be.status(job_id)
    except KeyError:
        return None, None
    folder = Path(job.out_dir)
    if job.state != DONE or not (folder / "hardness.npz").is_file():
        return job, None
    with np.load(folder / "hardness.npz") as data:
        return job, {"ids": data["ids"], "p_hard": data["p_hard"]}


HARDNESS_EDGES = (0.25, 0.5, 0.75)
HARDNESS_NAMES = ["p(hard) < 0.25", "0.25–0.5", "0.5–0.75", "p(hard) ≥ 0.75"]
HARDNESS_COLORS = ["#d9d9d9", "#fdae6b", "#e6550d", "#7f2704"]


def hardness_groups(hard: dict, ids) -> tuple:
    """Groups of the training ids `ids` by the twin predictor's p(hard) (4 bins), their names and
    colours, for the embedding scatter."""
    pos = np.searchsorted(hard["ids"], ids).clip(0, len(hard["ids"]) - 1)
    groups = np.searchsorted(HARDNESS_EDGES, hard["p_hard"][pos], side="right")
    return groups, HARDNESS_NAMES, HARDNESS_COLORS
