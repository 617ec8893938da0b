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
from tmu.jobs import DONE, JobQueue, JobStatus
from tmu.tasks import ESTIMATE, HARDNESS

from .runs import backend, file_stamp, make_config, side_job, submit_side_job
from .state import State


def estimate_config(state: State) -> RunConfig:
    """The estimate job's config: the run's, with TMU alone (the twin-tuning it needs)."""
    return dataclasses.replace(make_config(state), methods=("tmu",), twin_tune=())


def estimate(
    state: State, be: JobQueue | None = None, submit: bool = False
) -> tuple[JobStatus | None, dict | None]:
    """The estimate job of the current settings (submitted for this tab when `submit`, from the
    button's callback: a refusal comes back as a failed status saying why; a finished one is
    found on disk) and, once done, its figures; (None, None) when none was asked for."""
    be = be or backend()
    cfg = estimate_config(state)
    if submit:
        submit_side_job(state, ESTIMATE.name, cfg, be)
    job = side_job(state, ESTIMATE.name, cfg, be)
    if job is None or job.state != DONE:
        return job, None
    if (stamp := file_stamp(Path(job.out_dir) / "estimate.json")) is None:
        return None, None  # evicted from the store since: asked for again by the button
    return job, _load_estimate(job.out_dir, stamp)


def hardness_config(state: State) -> RunConfig:
    """The estimate job whose twin paints the embedding: a random 10 % request on the current
    data (no selection needed: the map is for choosing one)."""
    return dataclasses.replace(
        make_config(state, forget="random:0.1"), methods=("tmu",), twin_tune=()
    )


def hardness_map(
    state: State, be: JobQueue | None = None, submit: bool = False
) -> tuple[JobStatus | None, dict | None]:
    """The hardness job of `hardness_config` (submitted for this tab when `submit`, as
    `estimate`) and, once done, the twin predictor's p(hard) of every training sample
    ({ids, p_hard})."""
    be = be or backend()
    cfg = hardness_config(state)
    if submit:
        submit_side_job(state, HARDNESS.name, cfg, be)
    job = side_job(state, HARDNESS.name, cfg, be)
    if job is None or job.state != DONE:
        return job, None
    if (stamp := file_stamp(Path(job.out_dir) / "hardness.npz")) is None:
        return None, None  # evicted from the store since: asked for again by the button
    return job, _load_hardness(job.out_dir, stamp)


@lru_cache(maxsize=16)
def _load_estimate(out_dir: str, stamp: tuple[int, int, int]) -> dict:
    return json.loads((Path(out_dir) / "estimate.json").read_text())


@lru_cache(maxsize=4)
def _load_hardness(out_dir: str, stamp: tuple[int, int, int]) -> dict:
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
