"""The embedding scatter of the Forget-set page: M_o's penultimate features of D, projected to 2-D
with t-SNE (classes and outliers separate) and with PCA (the fast, distance-faithful fallback),
computed by a job of kind `embedding` (`tmu.tasks`: the pipeline's cached train embedding, so a
later run reuses both the original model and the embedding)."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import numpy as np

from tmu.config import RunConfig, to_dict
from tmu.jobs import CANCELLED, DONE, FAILED, JobQueue, JobStatus, job_key
from tmu.tasks import EMBEDDING

from .runs import backend, make_config
from .state import State

CLUSTERED = 0.5  # spread_ratio below this: warn that the selection is far from a random request


def embedding_config(state: State) -> RunConfig:
    """The config of the embedding job: only what M_o depends on (the forget set and methods
    don't)."""
    return dataclasses.replace(make_config(state, forget="random:0.1"), methods=("tmu",))


def embedding(
    state: State, be: JobQueue | None = None, *, retry: bool = False
) -> tuple[JobStatus, dict | None]:
    """Submit (or find) the embedding job; its status and, once done, {ids, xy, labels}.

    The page polls this every half second: a job that failed or was cancelled in this backend is
    returned as it is, its error for the page to show, not submitted again on every poll (a
    failing job would otherwise run forever and its error never appear); `retry=True` submits it
    again. A job that cannot even be queued (a full disk) comes back failed, with the reason."""
    be = be or backend()
    cfg = embedding_config(state)
    key = job_key(EMBEDDING.name, cfg)
    if not retry:
        known = next((j for j in be.jobs() if j.id == key), None)
        if known is not None and known.state in (FAILED, CANCELLED):
            return known, None
    try:
        job = be.status(be.submit(cfg, kind=EMBEDDING.name))
    except OSError as err:  # JobSubmitError: job.json could not be written
        return JobStatus(
            key, EMBEDDING.name, to_dict(cfg), str(be.out_dir(key)), state=FAILED, error=str(err)
        ), None
    if job.state != DONE:
        return job, None
    return job, _load_embedding(job.out_dir)


@lru_cache(maxsize=4)
def _load_embedding(out_dir: str) -> dict:
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
