"""The embedding scatter of the Forget-set page: M_o's penultimate features of D, projected to 2-D
with t-SNE (classes and outliers separate) and with PCA (the fast, distance-faithful fallback),
computed by a job of kind `embedding` (`tmu.tasks`: the pipeline's cached train embedding, so a
later run reuses both the original model and the embedding)."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import numpy as np

from tmu.config import RunConfig
from tmu.jobs import DONE, JobQueue, JobStatus
from tmu.tasks import EMBEDDING

from .runs import (
    backend,
    file_stamp,
    make_config,
    side_job,
    side_job_asked,
    submit_side_job,
)
from .state import State

CLUSTERED = 0.5  # spread_ratio below this: warn that the selection is far from a random request


def embedding_config(state: State) -> RunConfig:
    """The config of the embedding job: only what M_o depends on (the forget set and methods
    don't)."""
    return dataclasses.replace(make_config(state, forget="random:0.1"), methods=("tmu",))


def embedding(
    state: State, be: JobQueue | None = None, *, retry: bool = False
) -> tuple[JobStatus, dict | None]:
    """This tab's embedding job of the current settings: its status and, once done,
    {ids, xy, tsne, labels}.

    The page reads this on every rerun and poll, which never submit: the job is submitted for
    this tab once per settings, when the page first needs it (or again with `retry=True`, the
    Retry button's callback), and later reruns read its status. So a job that failed or was
    cancelled is shown with its error, not run again on every poll; one that could not be
    queued (the queue or this tab's quota full, the disk full) comes back failed, saying why."""
    be = be or backend()
    cfg = embedding_config(state)
    if retry or not side_job_asked(state, EMBEDDING.name, cfg):
        submit_side_job(state, EMBEDDING.name, cfg, be)
    job = side_job(state, EMBEDDING.name, cfg, be)
    if job is None:  # asked for, but this server no longer knows it (its folder evicted)
        submit_side_job(state, EMBEDDING.name, cfg, be)
        job = side_job(state, EMBEDDING.name, cfg, be)
    if job.state != DONE:
        return job, None
    if (stamp := file_stamp(Path(job.out_dir) / "embedding.npz")) is None:
        submit_side_job(state, EMBEDDING.name, cfg, be)  # evicted since it finished: again
        return side_job(state, EMBEDDING.name, cfg, be), None
    return job, _load_embedding(job.out_dir, stamp)


@lru_cache(maxsize=4)
def _load_embedding(out_dir: str, stamp: tuple[int, int, int]) -> dict:
    """The arrays of a finished embedding job (keyed by the file's stamp too: a later
    generation of the job writes it again in the same folder)."""
    with np.load(Path(out_dir) / "embedding.npz") as data:
        return {k: data[k] for k in data.files}


def selection_spread(state: State, ids: np.ndarray) -> float | None:
    """tmu.twin.spread_ratio of a point-and-click selection in the embedding scatter's 2-D space,
    or None before the embedding is ready or with fewer than 2 samples."""
    from tmu.twin import spread_ratio

    _, emb = embedding(state)
    if emb is None or len(ids) < 2:
        return None
    return spread_ratio(emb["xy"], emb["labels"], np.isin(emb["ids"], ids))
