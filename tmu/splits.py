"""Index sets over one labelled pool: D / H / T by seed, then the forget set of a `ForgetSpec`.

Every set is a sorted int64 array of pool positions (sample ids); datasets are never mutated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .forget import ForgetSpec, ForgetSpecError, parse_forget

__all__ = ["ForgetSpecError", "Splits", "make_splits", "split_pool"]


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


def make_splits(
    labels: np.ndarray,
    forget: ForgetSpec | str,
    *,
    holdout: float,
    test: float,
    seed: int,
    classes: tuple[str, ...],
    official_test: np.ndarray | None = None,
) -> Splits:
    """All five data roles for one request: D / H / T by `seed`, then D_f from `forget`."""
    labels = np.asarray(labels)
    train, hold, tst = split_pool(len(labels), holdout, test, seed, official_test)
    forget = parse_forget(forget).resolve(labels, train, classes, seed)
    return Splits(train, hold, tst, forget, np.setdiff1d(train, forget))
