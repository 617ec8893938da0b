"""Random-label: fine-tune on the forget set relabelled at random, alongside the retain set
(Golatkar et al., CVPR 2020; Graves et al., "Amnesiac Machine Learning", AAAI 2021)."""

from __future__ import annotations

import numpy as np

from ..training import Part
from .base import Method, random_wrong_labels


class RandomLabel(Method):
    name = "random_label"
    description = "Fine-tune with a random wrong label on every forget sample, plus the retain set."
    defaults = {"epochs": 2, "lr": 0.01}
    grid = {"epochs": [1, 2], "lr": [0.005, 0.02]}

    def _unlearn(self, original, problem, env):
        rng = np.random.default_rng([env.seed, 0x51])
        f, r = problem.forget, problem.retain
        wrong = random_wrong_labels(problem.labels[f], problem.num_classes, rng)
        return self._finetune(original, problem, [Part(r, problem.labels[r]), Part(f, wrong)], env)
