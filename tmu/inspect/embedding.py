"""Penultimate features of every model of a run on ONE common 2-D projection, so that a point
sits at comparable positions in the original's, each unlearned model's and gold's panel.

Why an alignment step: an unlearned model is fine-tuned from the original and keeps its feature
basis, but a gold model is an independently trained network whose features are a different
basis (permuted, mixed and rescaled units). Projecting each model's features with its own PCA
would give panels whose axes mean different things. So each model's features are first mapped
into the original's feature space by a linear map fitted on the plotted retained samples (D_r,
which every model fits, the gold models included), then ONE PCA, fitted once on the original's
features of the plotted points, projects every mapped feature set to 2-D.

The map is affine least squares with a small ridge by default (`align="lstsq"`), or an
orthogonal Procrustes rotation with one isotropic scale (`align="procrustes"`, Schönemann 1966),
which keeps each model's own geometry but fits worse when the bases differ by more than a
rotation. Every model other than the original gets the same kind of map (so an unlearned model's
panel shows how D_f moved relative to the retained data, not a global drift); the original's is
the identity. Caveat: the map is fitted on D_r, so it shows D_f and T in the original's frame as
well as a linear map can; `fit_r2` (R² of the mapped features against the original's on the
plotted test points, which no map was fitted on) says how well that worked per model. Distances
in the plot are PCA distances of the original's space, not of the model's own. t-SNE or UMAP
would not do: they are not parametric maps, so one fit cannot be applied to every model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..training import embed
from .source import RunData, seeded_sample

ALIGNMENTS = ("lstsq", "procrustes")
POINT_SETS = ("forget", "retain", "test")


@dataclass(frozen=True)
class Embedding:
    """The plotted points and their 2-D positions under every model.

    ids, sets, labels: (n,) pool ids, data role ("forget", "retain", "test") and training label.
    models: names, in the order of the first axis of `coords` (M, n, 2) float32 and `preds`
    (M, n) int64 (each model's predicted class, from the run's stored softmax).
    fit_r2: (M,) R² of each model's alignment on the plotted test points (1 for the original).
    explained: (2,) fraction of the original's feature variance each axis holds."""

    ids: np.ndarray
    sets: np.ndarray
    labels: np.ndarray
    models: tuple[str, ...]
    coords: np.ndarray
    preds: np.ndarray
    fit_r2: np.ndarray
    explained: np.ndarray
    align: str

    def index(self, model: str) -> int:
        if model not in self.models:
            raise ValueError(f"unknown model {model!r}; models: {list(self.models)}")
        return self.models.index(model)

    def of(self, model: str) -> np.ndarray:
        """(n, 2) positions of the points under `model`."""
        return self.coords[self.index(model)]

    def agrees(self, model: str, reference: str = "gold_0") -> np.ndarray:
        """(n,) bool: where `model` predicts the same class as `reference`."""
        return self.preds[self.index(model)] == self.preds[self.index(reference)]


def point_ids(data: RunData, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """All of D_f (at most half of `max_points`) plus seeded samples of T and D_r sharing the
    rest (T first, as it is usually the smaller); returns (ids, set names)."""
    if max_points < 3:
        raise ValueError(f"max_points must be at least 3, got {max_points}")
    rng = data.rng(1)
    forget = seeded_sample(data.split["forget"], max_points // 2, rng)
    rest = max_points - len(forget)
    test = seeded_sample(data.split["test"], rest // 2, rng)
    retain = seeded_sample(data.split["retain"], rest - len(test), rng)
    parts = {"forget": forget, "retain": retain, "test": test}
    ids = np.concatenate([parts[k] for k in POINT_SETS])
    sets = np.concatenate([np.full(len(parts[k]), k) for k in POINT_SETS])
    return ids, sets


def fit_alignment(source: np.ndarray, target: np.ndarray, kind: str = "lstsq"):
    """A function mapping rows like `source` (n, d) onto `target` (n, d') in least squares.

    lstsq: affine, ridge-regularised (lambda = 1e-3 * mean eigenvalue of the centred source
    covariance, so a sample smaller than d stays well posed). procrustes: centre, rotate by the
    orthogonal R minimising ||A R - B||_F, scale by the optimal single factor; needs d == d'."""
    if kind not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {kind!r}; valid: {list(ALIGNMENTS)}")
    mu_s, mu_t = source.mean(0), target.mean(0)
    a, b = source - mu_s, target - mu_t
    if kind == "lstsq":
        gram = a.T @ a
        ridge = 1e-3 * np.trace(gram) / len(gram) + 1e-12
        w = np.linalg.solve(gram + ridge * np.eye(len(gram)), a.T @ b)
    else:
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"procrustes needs equal widths, got {a.shape[1]} and {b.shape[1]}")
        u, s, vt = np.linalg.svd(a.T @ b)
        w = (u @ vt) * (s.sum() / max((a * a).sum(), 1e-300))
    return lambda f: (f - mu_s) @ w + mu_t


def pca2(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, (d, 2) axes, explained variance fractions) of a 2-component PCA; each axis's sign
    is fixed so that its largest-magnitude loading is positive (reproducible plots)."""
    mean = features.mean(0)
    _, s, vt = np.linalg.svd(features - mean, full_matrices=False)
    axes = vt[:2].T
    axes = axes * np.sign(axes[np.abs(axes).argmax(0), [0, 1]])
    var = s**2
    return mean, axes, var[:2] / max(var.sum(), 1e-300)


def r2(pred: np.ndarray, truth: np.ndarray) -> float:
    """Coefficient of determination of `pred` for `truth` over all coordinates."""
    total = ((truth - truth.mean(0)) ** 2).sum()
    return float(1 - ((pred - truth) ** 2).sum() / total) if total > 0 else float("nan")


def project_embeddings(
    data: RunData,
    *,
    max_points: int = 2000,
    align: str = "lstsq",
    batch_size: int | None = None,
) -> Embedding:
    """Every model's penultimate features of D_f and seeded samples of D_r and T (at most
    `max_points` in all) on one 2-D projection; each model aligned to the original on the plotted
    D_r samples (see the module docstring). One forward pass per model over the points."""
    if align not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {align!r}; valid: {list(ALIGNMENTS)}")
    ids, sets = point_ids(data, max_points)
    names = ["original", *(m for m in data.models if m != "original")]

    def features(name: str) -> np.ndarray:
        f = embed(data.models[name], data.x, ids, device=data.device, batch_size=batch_size)
        return f.astype(np.float64)

    ref = features("original")
    mean, axes, explained = pca2(ref)
    fit, test = sets == "retain", sets == "test"
    coords, fit_r2 = [], []
    for name in names:
        mapped = ref
        if name != "original":
            own = features(name)
            mapped = fit_alignment(own[fit], ref[fit], align)(own)
        coords.append((mapped - mean) @ axes)
        fit_r2.append(r2(mapped[test], ref[test]) if test.any() else float("nan"))
    preds = np.stack([data.probs(n, ids).argmax(1) for n in names]).astype(np.int64)
    return Embedding(
        ids,
        sets,
        data.labels[ids],
        tuple(names),
        np.stack(coords).astype(np.float32),
        preds,
        np.asarray(fit_r2),
        explained,
        align,
    )
