"""Fine-tune: keep training on the retain set only, so the forget set fades by catastrophic
forgetting (Warnecke et al., NDSS 2023; Golatkar et al., CVPR 2020 use it as a baseline)."""

from __future__ import annotations

from ..training import Part
from .base import Method


class FineTune(Method):
    name = "finetune"
    description = "Fine-tune on the retain set only (forgetting by catastrophic interference)."
    defaults = {"epochs": 2, "lr": 0.02}
    grid = {"epochs": [1, 2, 4], "lr": [0.01, 0.04]}

    def _unlearn(self, original, problem, env):
        return self._finetune(
            original, problem, [Part(problem.retain, problem.labels[problem.retain])], env
        )
