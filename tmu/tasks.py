"""The job kinds beyond `run` that the dashboard asks for, each a pipeline task of this package
(so a Ray worker, which ships `tmu` alone, runs them too):

* `embedding` — M_o's penultimate features of D projected to 2-D (PCA, and t-SNE, which keeps
  classes and outliers apart): `embedding.npz` with ids, xy, tsne and labels;
* `estimate` — the twin's estimate before any retraining: how many of the forget samples a
  retrained model would get wrong, and how many TMU's predictor would flip (`estimate.json`);
* `hardness` — the twin predictor's p(hard) of every training sample (`hardness.npz`), to point
  at the samples a retrained model would miss before any forget set is chosen.

Each reuses the store's original model, twin and predictor, so a later run pays for none of them
again. Importing this module registers the three kinds (`tmu.jobs.JOB_KINDS`).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .artifacts import Store, atomic_write, write_json
from .config import RunConfig
from .jobs import JobKind, Progress, register_job_kind


def _npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, buf.getvalue())


def embedding_task(cfg: RunConfig, store: Store, out: Path, progress: Progress) -> None:
    """`out/embedding.npz`: ids (n,), xy (n, 2: PCA), tsne (n, 2) and labels (n,) of D."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    from .pipeline import load_data, train_embedding, train_original

    data = load_data(cfg)
    original = train_original(cfg, data, store, progress)
    progress("embed", 0.0)
    feats, _ = train_embedding(cfg, data, original.model, store)
    xy = PCA(n_components=2, random_state=cfg.seed).fit_transform(feats)
    progress("embed", 0.5)
    perplexity = float(min(30, max(2, (len(feats) - 1) // 3)))
    tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=cfg.seed).fit_transform(feats)
    progress("embed", 1.0)
    train = data.splits.train
    _npz(
        out / "embedding.npz",
        ids=train,
        xy=xy.astype(np.float32),
        tsne=tsne.astype(np.float32),
        labels=data.labels[train],
    )


def _twin(cfg: RunConfig, store: Store, progress: Progress):
    """The data, the original and the twin problem of `cfg` (stored ones reused)."""
    from .pipeline import load_data, prepare_twin, train_original

    data = load_data(cfg)
    original = train_original(cfg, data, store, progress)
    return data, original, prepare_twin(cfg, data, original, store, progress)


def estimate_task(cfg: RunConfig, store: Store, out: Path, progress: Progress) -> None:
    """`out/estimate.json`: |D_f|, |H_f|, the twin's hard rate, the expected number gold gets
    wrong, how many samples TMU's predictor would flip, and its rule."""
    from .pipeline import decide

    data, original, twin = _twin(cfg, store, progress)
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


def hardness_task(cfg: RunConfig, store: Store, out: Path, progress: Progress) -> None:
    """`out/hardness.npz`: ids of D and the twin predictor's p(hard) of each (`hardness`)."""
    from .pipeline import hardness

    data, original, twin = _twin(cfg, store, progress)
    p_hard = hardness(cfg, data, original.model, twin)
    _npz(out / "hardness.npz", ids=data.splits.train, p_hard=p_hard.astype(np.float32))


def _twin_stages(cfg: RunConfig) -> list[str]:
    return ["original", "twin"]


EMBEDDING = register_job_kind(
    JobKind("embedding", embedding_task, lambda cfg: ["original", "embed"], "embedding.npz")
)
ESTIMATE = register_job_kind(JobKind("estimate", estimate_task, _twin_stages, "estimate.json"))
HARDNESS = register_job_kind(JobKind("hardness", hardness_task, _twin_stages, "hardness.npz"))
