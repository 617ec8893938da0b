"""Index sets over one labelled pool: D / H / T by seed, then the forget set of a `ForgetSpec`.

Every set is a sorted int64 array of pool positions (sample ids); datasets are never mutated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .forget import ForgetSpec, ForgetSpecError, parse_forget, random_wrong_labels

__all__ = ["ForgetSpecError", "Splits", "make_splits", "noisy_labels", "request", "split_pool"]


@dataclass(frozen=True)
class Splits:
    """The data roles of method spec §2 (sorted id arrays)."""

    train: np.ndarray
    holdout: np.ndarray
    test: np.ndarray
    forget: np.ndarray
    retain: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {
            "train": self.train,
            "holdout": self.holdout,
            "test": self.test,
            "forget": self.forget,
            "retain": self.retain,
        }


def split_pool(
    n: int, holdout: float, test: float, seed: int, official_test: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split ids 0..n-1 into (train D, holdout H, test T), sorted, by a seeded permutation.

    With `official_test`, T is that set and H is the `holdout` fraction of the remaining ids.
    """
    if not (0 < holdout < 1 and 0 <= test < 1 and holdout + test < 1):
        raise ValueError(f"holdout={holdout} and test={test} must be fractions summing below 1")
    rng = np.random.default_rng(seed)
    if official_test is not None:
        t = np.sort(np.asarray(official_test, dtype=np.int64))
        rest = rng.permutation(np.setdiff1d(np.arange(n), t))
        n_h = round(holdout * len(rest))
        return np.sort(rest[n_h:]), np.sort(rest[:n_h]), t
    perm = rng.permutation(n)
    n_h, n_t = round(holdout * n), round(test * n)
    return np.sort(perm[n_h + n_t :]), np.sort(perm[:n_h]), np.sort(perm[n_h : n_h + n_t])


def noisy_labels(
    labels: np.ndarray, train: np.ndarray, holdout: np.ndarray, rate: float, seed: int, k: int
) -> np.ndarray:
    """Label noise in the training data (`split.label_noise`): a fraction `rate` of D and the
    same fraction of H, drawn by `seed`, each get a label drawn uniformly over the other `k - 1`
    classes, as annotators' slips would. T keeps its labels (the noise-free yardstick). Returns
    a new array; `labels` itself is unchanged (rate 0 gives `labels` back)."""
    if rate == 0:
        return np.asarray(labels)
    rng, out = np.random.default_rng([seed, 0x4E]), np.array(labels, copy=True)
    for ids in (train, holdout):
        picked = rng.choice(ids, size=round(rate * len(ids)), replace=False)
        out[picked] = random_wrong_labels(out[picked], k, rng)
    return out


def request(
    truth: np.ndarray,
    forget: ForgetSpec | str,
    *,
    holdout: float,
    test: float,
    seed: int,
    classes: tuple[str, ...],
    official_test: np.ndarray | None = None,
    label_noise: float = 0.0,
) -> tuple[Splits, np.ndarray]:
    """One request's five data roles and the labels every model trains on: D / H / T by `seed`,
    label noise on D and H, D_f resolved against those (given) labels, then the forget kind's
    own relabelling (`mislabeled:F`). `truth` is the pool's labels, never changed."""
    truth, spec, k = np.asarray(truth), parse_forget(forget), len(classes)
    train, hold, tst = split_pool(len(truth), holdout, test, seed, official_test)
    given = noisy_labels(truth, train, hold, label_noise, seed, k)
    ids = spec.resolve(given, train, classes, seed)
    labels = spec.trained_labels(given, ids, k, seed)
    return Splits(train, hold, tst, ids, np.setdiff1d(train, ids)), labels


def make_splits(
    labels: np.ndarray,
    forget: ForgetSpec | str,
    *,
    holdout: float,
    test: float,
    seed: int,
    classes: tuple[str, ...],
    official_test: np.ndarray | None = None,
    label_noise: float = 0.0,
) -> Splits:
    """All five data roles for one request: D / H / T by `seed`, then D_f from `forget`."""
    return request(
        labels,
        forget,
        holdout=holdout,
        test=test,
        seed=seed,
        classes=classes,
        official_test=official_test,
        label_noise=label_noise,
    )[0]
