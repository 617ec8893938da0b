"""NegGrad+: gradient descent on the retain set and ascent on the forget set (Kurmanji et al.,
"Towards Unbounded Machine Unlearning", NeurIPS 2023)."""

from __future__ import annotations

from ..training import Part
from .base import Method


class NegGradPlus(Method):
    name = "neggrad_plus"
    description = "Descent on the retain set, ascent (weight -alpha) on the forget set."
    defaults = {"epochs": 2, "lr": 0.01, "alpha": 0.2}
    grid = {"epochs": [1, 2], "alpha": [0.05, 0.2, 0.5]}

    def _unlearn(self, original, problem, env):
        f, r = problem.forget, problem.retain
        parts = [
            Part(r, problem.labels[r]),
            Part(f, problem.labels[f], weight=-float(self.params["alpha"])),
        ]
        return self._finetune(original, problem, parts, env)
