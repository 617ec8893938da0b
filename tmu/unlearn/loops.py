"""A short SGD loop shared by the methods whose loss `tmu.training.fit` cannot express:
distillation (SCRUB, Bad Teacher), a weight penalty (l1-sparse) and masked gradients (SalUn).

Same recipe as `fit`: SGD with momentum 0.9 and weight decay 5e-4 at a constant lr, each epoch a
fresh shuffle of the `Part`s (their `per_epoch` draws a subset or oversamples), seeded by
`env.seed` so that runs on the CPU are deterministic. The loss is a callable of (model, Batch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..training import Part
from .base import Env, Problem

MOMENTUM, WEIGHT_DECAY = 0.9, 5e-4


@dataclass(frozen=True)
class Batch:
    """One mini-batch on the device: inputs x (B, C, H, W), the labels its parts carry y (B,),
    the index of the part each sample came from `part` (B,), and `done`, the fraction of the
    training finished before this step, in [0, 1)."""
    x: torch.Tensor
    y: torch.Tensor
    part: torch.Tensor
    done: float


Loss = Callable[[nn.Module, Batch], torch.Tensor]


def sgd(model: nn.Module, lr: float, weight_decay: float = WEIGHT_DECAY) -> torch.optim.SGD:
    """The project's unlearning optimizer: SGD, momentum 0.9, weight decay 5e-4 by default."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM, weight_decay=weight_decay)


def stage_env(env: Env, k: int, n: int) -> Env:
    """`env` whose progress reports stage k of n equal stages (for a method that calls `train` n times)."""
    if env.progress is None:
        return env
    return replace(env, progress=lambda frac: env.progress((k + frac) / n))


def train(model: nn.Module, problem: Problem, env: Env, parts: list[Part], loss_fn: Loss, *,
          epochs: int, lr: float, batch_size: int = 64, salt: int = 0,
          opt: torch.optim.Optimizer | None = None,
          mask: Sequence[torch.Tensor] | None = None, clip: float | None = None) -> nn.Module:
    """Train `model` in place (move it to env.device first) on `parts` with `loss_fn`; eval mode out.

    salt: mixed into the shuffling seed, so that repeated calls (SCRUB's phases) draw differently.
    opt: an optimizer to carry on with (momentum kept across calls); a fresh `sgd` otherwise.
    mask: one 0/1 tensor per parameter; only the weights under a 1 change. Weight decay is then
    applied inside the mask too (SGD's own decay would move the frozen weights).
    clip: a bound on the gradient's global l2 norm per step (None: no clipping).
    """
    model.to(env.device).train()
    if opt is None:
        opt = sgd(model, lr, weight_decay=0.0 if mask is not None else WEIGHT_DECAY)
    rng = np.random.default_rng([env.seed, salt])
    steps = max(epochs * math.ceil(sum(p.count for p in parts) / batch_size), 1)
    step = 0
    for _ in range(epochs):
        ids, y, part = _epoch(parts, rng)
        for start in range(0, len(ids), batch_size):
            sl = slice(start, start + batch_size)
            batch = Batch(problem.x[ids[sl].to(problem.x.device)].to(env.device), y[sl].to(env.device),
                          part[sl].to(env.device), step / steps)
            loss = loss_fn(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if mask is not None:
                for p, m in zip(model.parameters(), mask):
                    if p.grad is not None:
                        p.grad.add_(p.detach(), alpha=WEIGHT_DECAY).mul_(m)
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            step += 1
            if env.progress is not None:
                env.progress(step / steps)
    return model.eval()


def _epoch(parts: list[Part], rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """One shuffled epoch as parallel long tensors: pool ids, labels, part index."""
    pos = [p.draw(rng) for p in parts]
    ids = np.concatenate([np.asarray(p.ids)[q] for p, q in zip(parts, pos)])
    y = np.concatenate([np.asarray(p.labels)[q] for p, q in zip(parts, pos)])
    part = np.concatenate([np.full(len(q), k) for k, q in enumerate(pos)])
    order = rng.permutation(len(ids))
    return tuple(torch.as_tensor(a[order], dtype=torch.long) for a in (ids, y, part))
