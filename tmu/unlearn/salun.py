"""SalUn (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency",
ICLR 2024).

Weight saliency: the `mask_ratio` fraction of all weights with the largest |d CE(D_f) / d theta|
under the original (one global threshold, as in the authors' code). Then random-label unlearning
(forget samples with a random wrong label, plus the retain set, full passes) in which only the
salient weights move: their gradients are masked, and weight decay acts inside the mask only
(batch-norm running statistics are buffers, not weights, and still update).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..models import clone_model
from ..training import Part, cross_entropy, rows
from .base import Method, random_wrong_labels


def saliency_mask(
    original, problem, env, ratio: float, batch_size: int = 256
) -> list[torch.Tensor]:
    """One 0/1 float tensor per parameter of `original` (same shapes, on env.device) marking the
    `ratio` share of weights with the largest forget-set gradient magnitude. `original` is only
    read."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"mask_ratio must lie in (0, 1], got {ratio!r}")
    model = clone_model(original).to(env.device).eval()
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    f = problem.forget
    for s in range(0, len(f), batch_size):
        ids = torch.as_tensor(f[s : s + batch_size], dtype=torch.long)
        y = torch.as_tensor(
            problem.labels[f[s : s + batch_size]], dtype=torch.long, device=env.device
        )
        loss = F.cross_entropy(model(rows(problem.x, ids, env.device)), y, reduction="sum")
        for t, g in zip(total, torch.autograd.grad(loss, params)):
            t.add_(g)
    flat = torch.cat([t.abs().flatten() for t in total])
    keep = torch.zeros_like(flat)
    keep[flat.argsort(descending=True, stable=True)[: max(1, round(ratio * len(flat)))]] = 1.0
    return [m.view_as(p) for m, p in zip(keep.split([p.numel() for p in params]), params)]


class SalUn(Method):
    name = "salun"
    description = (
        "Random-label unlearning that updates only the weights most salient to the forget set."
    )
    defaults = {"epochs": 2, "lr": 0.01, "mask_ratio": 0.5, "batch_size": 64}
    grid = {"mask_ratio": [0.1, 0.5], "lr": [0.01, 0.03]}

    def _unlearn(self, original, problem, env):
        mask = saliency_mask(original, problem, env, float(self.params["mask_ratio"]))
        f, r = problem.forget, problem.retain
        wrong = random_wrong_labels(
            problem.labels[f], problem.num_classes, np.random.default_rng([env.seed, 0x5A])
        )
        parts = [Part(r, problem.labels[r]), Part(f, wrong)]
        return self._finetune(original, problem, parts, env, cross_entropy, salt=0, mask=mask)
