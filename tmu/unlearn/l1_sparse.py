"""l1-sparse fine-tuning (Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS
2023).

Fine-tune on D_r with cross-entropy plus gamma_t * ||theta||_1 over every parameter, gamma_t
decaying linearly from `gamma` to 0 over the training (the paper's schedule): sparsity is pushed
early, accuracy recovered late. Full passes over D_r, as `finetune` does.
"""

from __future__ import annotations

import torch.nn.functional as F

from ..training import Part
from .base import Method


def l1_norm(model):
    """Sum of |w| over all parameters (a scalar tensor in the autograd graph)."""
    return sum(p.abs().sum() for p in model.parameters())


class L1Sparse(Method):
    name = "l1_sparse"
    description = "Fine-tune on the retain set with an l1 weight penalty decaying linearly to 0."
    defaults = {"epochs": 2, "lr": 0.02, "gamma": 5e-4, "batch_size": 64}
    grid = {"gamma": [1e-4, 5e-4, 2e-3]}

    def _unlearn(self, original, problem, env):
        gamma = float(self.params["gamma"])

        def loss(model, batch):
            return F.cross_entropy(model(batch.x), batch.y) + gamma * (1.0 - batch.done) * l1_norm(
                model
            )

        r = problem.retain
        return self._finetune(original, problem, [Part(r, problem.labels[r])], env, loss, salt=0)
