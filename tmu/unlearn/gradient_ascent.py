"""Gradient ascent: raise the loss on the forget set alone, with no retain term (Golatkar et al.,
CVPR 2020 and Thudi et al., "Unrolling SGD", EuroS&P 2022 use it as a baseline; NegGrad+ adds the
retain term it lacks).

The classic weak baseline: the ascent is unbounded and drags the retain and test accuracy down
with the forget accuracy, so the defaults are one gentle pass. With a target
(`Problem.target_forget_acc`, the NAME+stop entry) it stops once D_f's accuracy reaches it.
"""

from __future__ import annotations

from ..training import Part
from .base import Method


class GradientAscent(Method):
    name = "gradient_ascent"
    description = "Gradient ascent on the forget set only (no retain term): the classic weak one."
    defaults = {"epochs": 1, "lr": 0.01, "batch_size": 32}
    grid = {"epochs": [1, 3], "lr": [0.01, 0.03, 0.1]}

    def _unlearn(self, original, problem, env):
        f = problem.forget
        return self._finetune(original, problem, [Part(f, problem.labels[f], weight=-1.0)], env)
