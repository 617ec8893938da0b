"""Selective Synaptic Dampening (Foster, Schoepf and Brintrup, "Fast Machine Unlearning Without
Retraining Through Selective Synaptic Dampening", AAAI 2024).

No training. The diagonal Fisher importance of every parameter is estimated over the full
training set D = D_r ∪ D_f and over D_f; each parameter whose forget importance dominates,
imp_f > alpha * imp_D, is multiplied by beta = min(lam * imp_D / imp_f, 1) (lam is the paper's
lambda). Defaults alpha = 10, lam = 1, as in the paper.

Importance estimate: as in the authors' code, the mean over mini-batches of the squared gradient
of the batch-mean cross-entropy (one gradient per batch of at most `batch_size`, 128 as there),
not the mean of per-sample squared gradients; in eval mode (batch-norm statistics untouched).
One deviation: D and D_f are cut into batches of the same size (within one sample), at most
min(`batch_size`, |D_f|). A batch gradient's square carries a noise term of about 1/B, so with
the authors' fixed 128 a forget set smaller than a batch (common here: ~100 samples) looked
several times more important than D everywhere; on a random 30-sample forget set of the tiny
digits problem (tests' `tiny`) that dampened 11k weights and cost 38 points of retain accuracy
(equal sizes: 2k weights, no retain accuracy lost). D is taken in a seeded random order, so
that a pool stored class by class still gives mixed batches; at most MAX_D_BATCHES of its
batches are used.

When D_f is a large share of D, imp_D holds D_f's own importance (for per-sample importances,
imp_D >= |D_f| / |D| * imp_f exactly), so alpha = 10 selects little once D_f passes ~10 % of D:
the twin-tuning grid offers smaller alphas.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from ..models import clone_model
from ..training import Progress, rows
from .base import Method

logger = logging.getLogger(__name__)

# A tiny forget set makes D's batches tiny too: imp_D is then estimated on a seeded random subset
# of this many batches (a 5-sample request on MNIST would otherwise take 12k backward passes).
MAX_D_BATCHES = 2000


def equal_batches(ids: np.ndarray, size: float) -> list[np.ndarray]:
    """`ids` cut in order into nearly equal batches of about `size` (at least one)."""
    return np.array_split(ids, max(1, round(len(ids) / size)))


def fisher_diagonal(
    model: torch.nn.Module,
    x: torch.Tensor,
    batches: list[np.ndarray],
    labels: np.ndarray,
    *,
    device: torch.device,
    progress: Progress | None = None,
) -> list[torch.Tensor]:
    """Mean over `batches` (arrays of pool ids) of (d mean-CE(batch) / d theta)^2: one tensor per
    trainable parameter of `model` (same shapes, on `device`). `model` is only read: gradients
    come from autograd.grad, its .grad fields stay untouched. `progress` gets each batch's end as
    a fraction of this pass."""
    model.to(device).eval()
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    for k, ids in enumerate(batches):
        y = torch.as_tensor(labels[ids], dtype=torch.long, device=device)
        loss = F.cross_entropy(model(rows(x, ids, device)), y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for t, g in zip(total, grads):
            if g is not None:
                t.add_(g.square())
        if progress is not None:
            progress((k + 1) / len(batches))
    return [t / max(len(batches), 1) for t in total]


def dampen(
    model: torch.nn.Module,
    imp_all: list[torch.Tensor],
    imp_forget: list[torch.Tensor],
    alpha: float,
    lam: float,
) -> int:
    """Scale in place each parameter of `model` where imp_forget > alpha * imp_all by
    min(lam * imp_all / imp_forget, 1); returns how many weights were scaled."""
    params = [p for p in model.parameters() if p.requires_grad]
    scaled = 0
    with torch.no_grad():
        for p, d, f in zip(params, imp_all, imp_forget):
            chosen = f > alpha * d
            # Where chosen, f > 0, so the division is safe; elsewhere the factor is unused.
            beta = torch.where(chosen, (lam * d / f.clamp_min(1e-30)).clamp(max=1.0), 1.0)
            p.mul_(beta)
            scaled += int(chosen.sum())
    return scaled


def importances(
    model: torch.nn.Module, problem, env, batch_size: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(imp_D, imp_f): `fisher_diagonal` of `model` over D = retain ∪ forget (at most
    MAX_D_BATCHES batches of it) and over D_f, in a seeded order and batches of one common size
    (module docstring); progress reported over both passes."""
    rng = np.random.default_rng([env.seed, 0x55D])
    every = rng.permutation(np.union1d(problem.retain, problem.forget))
    forget = rng.permutation(problem.forget)
    f_batches = equal_batches(forget, min(batch_size, len(forget)))
    d_batches = equal_batches(every, len(forget) / len(f_batches))[:MAX_D_BATCHES]
    share = len(every) / (len(every) + len(forget))

    def stage(offset: float, width: float) -> Progress | None:
        if env.progress is None:
            return None
        return lambda frac: env.progress(offset + width * frac)

    x, y, device = problem.x, problem.labels, env.device
    imp_all = fisher_diagonal(model, x, d_batches, y, device=device, progress=stage(0, share))
    imp_f = fisher_diagonal(model, x, f_batches, y, device=device, progress=stage(share, 1 - share))
    return imp_all, imp_f


class SSD(Method):
    name = "ssd"
    description = (
        "Selective Synaptic Dampening: shrink the weights far more important to the forget set "
        "than to the training set (no training)."
    )
    defaults = {"alpha": 10.0, "lam": 1.0, "batch_size": 128}
    grid = {"alpha": [3.0, 10.0, 30.0], "lam": [0.5, 1.0]}

    def _unlearn(self, original, problem, env):
        alpha, lam = float(self.params["alpha"]), float(self.params["lam"])
        bs = int(self.params["batch_size"])
        for key, value in (("alpha", alpha), ("lam", lam), ("batch_size", bs)):
            if not value > 0:
                raise ValueError(f"method_params.ssd.{key} must be positive, got {value!r}")
        model = clone_model(original).to(env.device).eval()
        imp_all, imp_f = importances(model, problem, env, bs)
        scaled = dampen(model, imp_all, imp_f, alpha, lam)
        logger.info("ssd dampened %d of %d weights", scaled, sum(t.numel() for t in imp_all))
        return model.eval()
