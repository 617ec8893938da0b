"""Boundary Shrink (Chen et al., "Boundary Unlearning: Rapid Forgetting of Deep Networks via
Shifting the Decision Space", CVPR 2023).

Each forget sample is pushed across the original model's nearest decision boundary by one FGSM
step of size `eps` (inputs in [0, 1]; the paper uses 0.1 for small images); the class the attacked
input lands in is its "nearest wrong class". The original is then fine-tuned on the forget samples
relabelled with it, which shrinks their class region onto its neighbours. The paper fine-tunes on
the forget set alone (`retain_ratio` 0); a retain draw of `retain_ratio` x |D_f| samples per epoch
keeps the retain accuracy. One deviation: where the attacked input is still classified as its true
class, we take the attacked logits' best *wrong* class instead of the true one (a no-op label).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..models import clone_model
from ..training import Part, rows
from .base import Method


def nearest_wrong_labels(
    model,
    x: torch.Tensor,
    ids: np.ndarray,
    labels: np.ndarray,
    eps: float,
    *,
    device: torch.device,
    batch_size: int = 256,
) -> np.ndarray:
    """The best wrong class of `model` at x + eps * sign(grad_x CE) (FGSM), per id; shape
    (len(ids),).

    `model` is only read: input gradients come from autograd.grad, its .grad fields stay untouched.
    """
    model = clone_model(model).to(device).eval()
    out = []
    for s in range(0, len(ids), batch_size):
        idx = torch.as_tensor(ids[s : s + batch_size], dtype=torch.long)
        xb = rows(x, idx, device).requires_grad_(True)
        yb = torch.as_tensor(labels[s : s + batch_size], dtype=torch.long, device=device)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(xb), yb), xb)
        with torch.no_grad():
            logits = model((xb + eps * grad.sign()).clamp(0.0, 1.0))
            logits[torch.arange(len(yb), device=device), yb] = -torch.inf
            out.append(logits.argmax(1).cpu())
    return torch.cat(out).numpy() if out else np.empty(0, dtype=np.int64)


class BoundaryShrink(Method):
    name = "boundary_shrink"
    description = (
        "Relabel each forget sample with its FGSM nearest wrong class and fine-tune on them."
    )
    defaults = {"epochs": 2, "lr": 0.01, "eps": 0.1, "retain_ratio": 4.0}
    # The first point is the paper's recipe (forget set only), made gentle so as not to wreck D_r.
    grid = [
        {"retain_ratio": 0.0, "epochs": 1, "lr": 0.003},
        {"retain_ratio": 1.0},
        {"retain_ratio": 4.0},
    ]

    def _unlearn(self, original, problem, env):
        f, r = problem.forget, problem.retain
        wrong = nearest_wrong_labels(
            original, problem.x, f, problem.labels[f], float(self.params["eps"]), device=env.device
        )
        n_retain = min(len(r), int(float(self.params["retain_ratio"]) * len(f)))
        parts = [Part(f, wrong), Part(r, problem.labels[r], per_epoch=n_retain)]
        return self._finetune(original, problem, parts, env)
