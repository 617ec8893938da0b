"""The twin's estimate before a run: how many of the selected forget samples a retrained model
would get wrong, from the twin problem alone (no gold model is trained), computed by a job of
kind `estimate` (`tmu.tasks`) whose original model, twin and predictor a later run reuses from the
store; and the twin's p(hard) of every training sample, a job of kind `hardness`."""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from tmu.config import RunConfig
from tmu.jobs import DONE, JobQueue, JobStatus, job_key
from tmu.tasks import ESTIMATE, HARDNESS

from .runs import backend, make_config
from .state import Key, State


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
    """The hardness job of `hardness_config` (submitted when `submit`) and, once done, the twin
    predictor's p(hard) of every training sample ({ids, p_hard})."""
    be = be or backend()
    cfg = hardness_config(state)
    job_id = (
        be.submit(cfg, kind=HARDNESS.name, owner=state.get(Key.VISITOR))
        if submit
        else job_key(HARDNESS.name, cfg)
    )
    try:
        job = be.status(job_id)
    except KeyError:
        return None, None
    if job.state != DONE:
        return job, None
    return job, _load_hardness(job.out_dir)


@lru_cache(maxsize=4)
def _load_hardness(out_dir: str) -> dict:
    with np.load(Path(out_dir) / "hardness.npz") as data:
        return {"ids": data["ids"], "p_hard": data["p_hard"]}


HARDNESS_EDGES = (0.25, 0.5, 0.75)
HARDNESS_NAMES = ["p(hard) < 0.25", "0.25–0.5", "0.5–0.75", "p(hard) ≥ 0.75"]
HARDNESS_COLORS = ["#d9d9d9", "#fdae6b", "#e6550d", "#7f2704"]


def hardness_groups(hard: dict, ids) -> tuple:
    """Groups of the training ids `ids` by the twin predictor's p(hard) (4 bins), their names and
    colours, for the embedding scatter."""
    pos = np.searchsorted(hard["ids"], ids).clip(0, len(hard["ids"]) - 1)
    groups = np.searchsorted(HARDNESS_EDGES, hard["p_hard"][pos], side="right")
    return groups, HARDNESS_NAMES, HARDNESS_COLORS
