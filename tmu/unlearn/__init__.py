"""Unlearning methods behind one registry. Adding a method is one file and one line here; a method
outside the repository registers itself with `register` or a `tmu.methods` entry point
(docs/plugins.md), loaded below."""

from __future__ import annotations

from .bad_teacher import BadTeacher
from .base import Env, Method, Problem, random_wrong_labels
from .boundary_shrink import BoundaryShrink
from .finetune import FineTune
from .gradient_ascent import GradientAscent
from .l1_sparse import L1Sparse
from .neggrad import NegGradPlus
from .random_label import RandomLabel
from .registry import (
    FAILED,
    METHODS,
    ORIGINS,
    RegistrationError,
    cache_tag,
    get_method,
    load_plugins,
    register,
)
from .retrain import Retrain
from .salun import SalUn
from .scrub import SCRUB
from .ssd import SSD
from .tmu import TMU

for _method in (
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
    SSD,
    GradientAscent,
):
    register(_method)

# Last, once every name above exists: a plug-in's module imports them from this package.
load_plugins()

__all__ = [
    "FAILED",
    "METHODS",
    "ORIGINS",
    "Env",
    "Method",
    "Problem",
    "RegistrationError",
    "cache_tag",
    "get_method",
    "load_plugins",
    "random_wrong_labels",
    "register",
]
