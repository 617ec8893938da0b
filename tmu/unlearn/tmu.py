"""TMU's unlearning step (method spec §6; Niu et al., "Towards Aligned Data Forgetting via Twin
Machine Unlearning", arXiv 2501.08615).

Starting from M_o, fine-tune on: a fresh random subset of D_r each epoch (true labels); the
predicted-easy forget samples with true labels and Gaussian input noise (kept right by
generalization, not memorisation); the predicted-hard forget samples with a random wrong label
each, oversampled because they are few and one pass does not flip them.
"""
from __future__ import annotations

import numpy as np

from ..training import Part
from .base import Method, random_wrong_labels


class TMU(Method):
    name = "tmu"
    description = ("Twin Machine Unlearning: keep predicted-easy forget samples right (with noise), "
                   "flip predicted-hard ones, chosen by a predictor learnt on a twin problem.")
    defaults = {"epochs": 4, "lr": 0.01, "sigma": 0.1, "oversample": 8, "retain_ratio": 3.0}
    grid = {"epochs": [3, 5], "oversample": [4, 10]}
    needs_predictor = True

    def _unlearn(self, original, problem, env):
        p, rng = self.params, np.random.default_rng([env.seed, 0x7A])
        easy = np.asarray(problem.easy, dtype=bool)
        f_easy, f_hard, r = problem.forget[easy], problem.forget[~easy], problem.retain
        wrong = random_wrong_labels(problem.labels[f_hard], problem.num_classes, rng)
        n_retain = min(len(r), int(p["retain_ratio"] * len(problem.forget)))
        parts = [Part(r, problem.labels[r], per_epoch=n_retain),
                 Part(f_easy, problem.labels[f_easy], noise=float(p["sigma"])),
                 Part(f_hard, wrong, per_epoch=int(p["oversample"]) * len(f_hard))]
        return self._finetune(original, problem, parts, env)
