"""Bad Teacher (Chundawat et al., "Can Bad Teaching Induce Forgetting? Unlearning in Deep Networks
using an Incompetent Teacher", AAAI 2023).

A student (a copy of the original) distils from the competent teacher (the original) on retain
samples and from an incompetent teacher (a randomly initialised network built under env.seed) on
forget samples: per sample KL(teacher_T || student_T) of outputs softened by temperature T. As in
the paper, each epoch sees the forget set plus a random `retain_frac` share (30 %) of D_r.
"""

from __future__ import annotations

import torch

from ..models import clone_model
from ..training import Part, kl_to_teacher
from .base import Method


class BadTeacher(Method):
    name = "bad_teacher"
    description = (
        "Distil from the original on retain samples and from a random network on forget samples."
    )
    defaults = {"epochs": 2, "lr": 0.01, "T": 1.0, "retain_frac": 0.3, "batch_size": 64}
    grid = {"epochs": [1, 2], "retain_frac": [0.3, 1.0]}

    def _unlearn(self, original, problem, env):
        p = self.params
        good = clone_model(original).to(env.device).eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(env.seed)
            bad = env.build().to(env.device).eval()
        T = float(p["T"])

        def loss(model, batch):
            with torch.no_grad():
                forget = (batch.part == 1).unsqueeze(1)
                target = torch.where(forget, bad(batch.x), good(batch.x))
            return kl_to_teacher(model(batch.x), target, T)

        f, r = problem.forget, problem.retain
        n_retain = min(len(r), max(1, round(float(p["retain_frac"]) * len(r))))
        parts = [Part(r, problem.labels[r], per_epoch=n_retain), Part(f, problem.labels[f])]
        return self._finetune(original, problem, parts, env, loss, salt=0)
