"""Unlearning methods behind one registry. Adding a method is one file and one line here."""

from __future__ import annotations

from .bad_teacher import BadTeacher
from .base import Env, Method, Problem, random_wrong_labels
from .boundary_shrink import BoundaryShrink
from .finetune import FineTune
from .l1_sparse import L1Sparse
from .neggrad import NegGradPlus
from .random_label import RandomLabel
from .retrain import Retrain
from .salun import SalUn
from .scrub import SCRUB
from .tmu import TMU

METHODS: dict[str, type[Method]] = {
    m.name: m
    for m in (
        Retrain,
        FineTune,
        NegGradPlus,
        RandomLabel,
        TMU,
        BoundaryShrink,
        L1Sparse,
        SCRUB,
        SalUn,
        BadTeacher,
    )
}


def get_method(name: str, **params) -> Method:
    """An instance of the registered method `name` with hyper-parameter overrides `params`."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {sorted(METHODS)}")
    return METHODS[name](**params)


__all__ = ["METHODS", "Env", "Method", "Problem", "get_method", "random_wrong_labels"]
