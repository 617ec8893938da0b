"""Index sets over one labelled pool: D / H / T by seed, and forget sets from a textual spec.

Every set is a sorted int64 array of pool positions (sample ids); datasets are never mutated.
Forget specs (architecture.md): ``random:F``, ``subclass:C:F``, ``class:C[,C...]``,
``ids:FILE`` (one id per line) or ``ids:I,J,...``. Classes may be given by id or by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class ForgetSpecError(ValueError):
    """A forget spec is malformed or names an impossible forget set."""


@dataclass(frozen=True)
class Splits:
    """The data roles of method spec §2 (sorted id arrays)."""
    train: np.ndarray
    holdout: np.ndarray
    test: np.ndarray
    forget: np.ndarray
    retain: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "holdout": self.holdout, "test": self.test,
                "forget": self.forget, "retain": self.retain}


def split_pool(n: int, holdout: float, test: float, seed: int,
               official_test: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    return np.sort(perm[n_h + n_t:]), np.sort(perm[:n_h]), np.sort(perm[n_h:n_h + n_t])


def _fraction(text: str, spec: str) -> float:
    try:
        f = float(text)
    except ValueError:
        raise ForgetSpecError(f"fraction {text!r} in forget spec {spec!r} is not a number") from None
    if not 0 < f < 1:
        raise ForgetSpecError(f"fraction {f} in forget spec {spec!r} must lie strictly between 0 and 1")
    return f


def _class_id(text: str, classes: tuple[str, ...], spec: str) -> int:
    text = text.strip()
    if text in classes and not text.isdigit():
        return classes.index(text)
    try:
        c = int(text)
    except ValueError:
        raise ForgetSpecError(f"unknown class {text!r} in forget spec {spec!r}; "
                              f"classes are 0..{len(classes) - 1} or {list(classes)[:10]}") from None
    if not 0 <= c < len(classes):
        raise ForgetSpecError(f"unknown class {c} in forget spec {spec!r}; valid: 0..{len(classes) - 1}")
    return c


def _parse_ids(body: str, spec: str) -> np.ndarray:
    path = Path(body)
    if "," not in body and not body.strip().lstrip("-").isdigit():
        if not path.is_file():
            raise ForgetSpecError(f"id file {body!r} in forget spec {spec!r} does not exist")
        tokens = path.read_text().split()
    else:
        tokens = [t for t in body.split(",") if t.strip()]
    try:
        ids = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError as err:
        raise ForgetSpecError(f"forget spec {spec!r}: ids must be integers ({err})") from None
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ForgetSpecError(f"forget spec {spec!r}: duplicate ids {values[counts > 1][:10].tolist()}")
    return ids


def resolve_forget(spec: str, labels: np.ndarray, train: np.ndarray, classes: tuple[str, ...],
                   seed: int) -> np.ndarray:
    """The forget set D_f ⊂ D named by `spec`, as sorted pool ids.

    labels: (N,) class id of every pool sample; train: the ids of D. Raises ForgetSpecError for a
    malformed spec, an empty set, the whole training set, unknown classes or ids outside D.
    """
    kind, _, body = spec.partition(":")
    rng = np.random.default_rng([seed, 0xF0])
    train_labels = labels[train]
    if kind == "random":
        f = _fraction(body, spec)
        forget = rng.choice(train, size=round(f * len(train)), replace=False)
    elif kind == "subclass":
        c_text, sep, f_text = body.rpartition(":")
        if not sep:
            raise ForgetSpecError(f"forget spec {spec!r} must look like subclass:CLASS:FRACTION")
        c, f = _class_id(c_text, classes, spec), _fraction(f_text, spec)
        members = train[train_labels == c]
        forget = rng.choice(members, size=round(f * len(members)), replace=False)
    elif kind == "class":
        if not body.strip():
            raise ForgetSpecError(f"forget spec {spec!r} names no class")
        cs = sorted({_class_id(t, classes, spec) for t in body.split(",")})
        forget = train[np.isin(train_labels, cs)]
    elif kind == "ids":
        forget = _parse_ids(body, spec)
        bad = forget[(forget < 0) | (forget >= len(labels))]
        if len(bad):
            raise ForgetSpecError(f"forget spec {spec!r}: ids {bad[:10].tolist()} are out of range "
                                  f"0..{len(labels) - 1}")
        outside = np.setdiff1d(forget, train)
        if len(outside):
            raise ForgetSpecError(f"forget spec {spec!r}: ids {outside[:10].tolist()} are not in the "
                                  f"training set (they are holdout or test samples)")
    else:
        raise ForgetSpecError(f"unknown forget spec kind {kind!r} in {spec!r}; "
                              "use random:F, subclass:C:F, class:C[,C...], ids:FILE or ids:I,J,...")
    return _checked(np.sort(np.asarray(forget, dtype=np.int64)), train, spec)


def _checked(forget: np.ndarray, train: np.ndarray, spec: str) -> np.ndarray:
    if len(forget) == 0:
        raise ForgetSpecError(f"forget spec {spec!r} selects no training sample")
    if len(forget) >= len(train):
        raise ForgetSpecError(f"forget spec {spec!r} selects the whole training set; "
                              "nothing would be left to retrain on")
    return forget


def make_splits(labels: np.ndarray, forget_spec: str, *, holdout: float, test: float, seed: int,
                classes: tuple[str, ...], official_test: np.ndarray | None = None) -> Splits:
    """All five data roles for one request: D / H / T by `seed`, then D_f from `forget_spec`."""
    labels = np.asarray(labels)
    train, hold, tst = split_pool(len(labels), holdout, test, seed, official_test)
    forget = resolve_forget(forget_spec, labels, train, classes, seed)
    return Splits(train, hold, tst, forget, np.setdiff1d(train, forget))
