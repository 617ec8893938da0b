"""One training loop for every stage: original, gold, twin, curriculum and every unlearning method.

A training set is a list of `Part`s over the pool. Each part carries its own labels (true, or
random wrong ones), a loss weight (negative = gradient ascent, as in NegGrad+), a Gaussian input
noise level (TMU's noise-perturbed fine-tuning) and how many samples to draw per epoch (fewer than
the part holds = a fresh random subset each epoch; more = oversampling with repetition).
A loss is a small function of (model, Batch): weighted cross-entropy by default, plain
cross-entropy, or a method's own (distillation, a weight penalty). The recipe (epochs, lr, batch
size, momentum, weight decay, schedule) is a `TrainConfig`.
The pool tensor should already sit on the training device (small datasets) or on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig

Progress = Callable[[float], None]
"""Called with the fraction of the training done, in [0, 1]."""


@dataclass(frozen=True)
class Part:
    """A slice of the training data: pool ids with the labels to fit and how to fit them."""

    ids: np.ndarray
    labels: np.ndarray
    weight: float = 1.0
    noise: float = 0.0
    per_epoch: int | None = None

    @property
    def count(self) -> int:
        """Samples drawn per epoch."""
        return len(self.ids) if self.per_epoch is None else int(self.per_epoch)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Positions into `ids` for one epoch: a permutation, a subset, or tiled permutations."""
        n, want = len(self.ids), self.count
        if n == 0 or want == 0:
            return np.empty(0, dtype=np.int64)
        return np.concatenate([rng.permutation(n) for _ in range(math.ceil(want / n))])[:want]


@dataclass(frozen=True)
class Batch:
    """One mini-batch on the compute device: inputs x (B, C, H, W) (noise already added), the
    labels its parts carry y (B,), per-sample loss weights (B,), the index of the part each sample
    came from `part` (B,), and `done`, the fraction of the training finished before this step."""

    x: torch.Tensor
    y: torch.Tensor
    weight: torch.Tensor
    part: torch.Tensor
    done: float


Loss = Callable[[nn.Module, Batch], torch.Tensor]


def weighted_cross_entropy(model: nn.Module, batch: Batch) -> torch.Tensor:
    """sum_i w_i * CE_i / B: each part's weight (negative = gradient ascent, as in NegGrad+)."""
    return (F.cross_entropy(model(batch.x), batch.y, reduction="none") * batch.weight).sum() / len(
        batch.y
    )


def cross_entropy(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Plain mean cross-entropy on the parts' labels (weights ignored)."""
    return F.cross_entropy(model(batch.x), batch.y)


def kl_to_teacher(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float
) -> torch.Tensor:
    """KL(teacher || student) of the outputs softened by temperature T, averaged over the batch."""
    return F.kl_div(
        F.log_softmax(student_logits / T, 1),
        F.softmax(teacher_logits / T, 1),
        reduction="batchmean",
    )


def rows(x: torch.Tensor, ids, device: torch.device) -> torch.Tensor:
    """Rows `ids` of the pool tensor `x`, gathered where `x` lives, then moved to `device`."""
    return x[torch.as_tensor(ids, dtype=torch.long).to(x.device)].to(device)


def sgd(model: nn.Module, cfg: TrainConfig, weight_decay: float | None = None) -> torch.optim.SGD:
    """The project's optimizer: SGD with the recipe's lr, momentum and weight decay."""
    decay = cfg.weight_decay if weight_decay is None else weight_decay
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=decay)


def fit(
    model: nn.Module,
    x: torch.Tensor,
    parts: list[Part],
    cfg: TrainConfig,
    *,
    device: torch.device,
    seed: int,
    salt: int | None = None,
    loss: Loss = weighted_cross_entropy,
    progress: Progress | None = None,
    opt: torch.optim.Optimizer | None = None,
    mask: Sequence[torch.Tensor] | None = None,
    clip: float | None = None,
    stop: Callable[[nn.Module], bool] | None = None,
    check_every: int = 4,
) -> nn.Module:
    """Train `model` in place on `parts` for `cfg.epochs` epochs with `loss`; returns it in eval
    mode.

    x: (N, C, H, W) pool inputs in [0, 1]. Deterministic on the CPU for a fixed seed: epochs are
    shuffled by numpy's default_rng(seed), or default_rng([seed, salt]) with a salt (so that
    repeated calls, such as SCRUB's phases, draw differently); input noise by a torch generator
    seeded with `seed`.
    opt: an optimizer to carry on with (momentum kept across calls); a fresh `sgd` otherwise.
    mask: one 0/1 tensor per parameter; only the weights under a 1 change, and weight decay then
    acts inside the mask only (SGD's own decay would move the frozen weights).
    clip: a bound on the gradient's global l2 norm per step (None: no clipping).
    stop: called with the model (in eval mode) before the first step and every `check_every`
    steps; training ends once it returns True (a method stopped at a target, see
    `tmu.unlearn.base.ForgetTarget`: a model already at its target is returned untrained).
    """
    model.to(device).train()
    rng = np.random.default_rng(seed if salt is None else [seed, salt])
    gen = torch.Generator(device=device).manual_seed(seed)
    steps = max(cfg.epochs * math.ceil(sum(p.count for p in parts) / cfg.batch_size), 1)
    if opt is None:
        opt = sgd(model, cfg, weight_decay=0.0 if mask is not None else None)
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cfg.schedule == "cosine" else None
    )
    step = 0
    if stop is not None and stop(model.eval()):
        return model
    model.train()
    for _ in range(cfg.epochs):
        epoch = _epoch(parts, rng)
        for start in range(0, len(epoch[0]), cfg.batch_size):
            batch = _batch(
                x, [t[start : start + cfg.batch_size] for t in epoch], step / steps, device, gen
            )
            opt.zero_grad(set_to_none=True)
            loss(model, batch).backward()
            if mask is not None:
                for p, m in zip(model.parameters(), mask):
                    if p.grad is not None:
                        p.grad.add_(p.detach(), alpha=cfg.weight_decay).mul_(m)
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            if progress is not None:
                progress(step / steps)
            if stop is not None and step % check_every == 0:
                if stop(model.eval()):
                    return model.eval()
                model.train()
    return model.eval()


def _epoch(parts: list[Part], rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """One shuffled epoch as parallel tensors: pool ids, labels, weights, noise levels, part
    index."""
    pos = [p.draw(rng) for p in parts]
    cols = [
        np.concatenate([np.asarray(p.ids)[q] for p, q in zip(parts, pos)]),
        np.concatenate([np.asarray(p.labels)[q] for p, q in zip(parts, pos)]),
        np.concatenate([np.full(len(q), p.weight, dtype=np.float32) for p, q in zip(parts, pos)]),
        np.concatenate([np.full(len(q), p.noise, dtype=np.float32) for p, q in zip(parts, pos)]),
        np.concatenate([np.full(len(q), k) for k, q in enumerate(pos)]),
    ]
    order = rng.permutation(len(cols[0]))
    return tuple(
        torch.as_tensor(c[order], dtype=torch.long if c.dtype.kind in "iu" else torch.float32)
        for c in cols
    )


def _batch(x, chunk, done, device, gen) -> Batch:
    ids, labels, weights, noise, part = chunk
    inputs = rows(x, ids, device)
    noise = noise.to(device)
    if bool((noise > 0).any()):
        eps = torch.randn(inputs.shape, generator=gen, device=device)
        inputs = (inputs + eps * noise.view(-1, 1, 1, 1)).clamp(0.0, 1.0)
    return Batch(inputs, labels.to(device), weights.to(device), part.to(device), done)


@torch.no_grad()
def predict(
    model: nn.Module,
    x: torch.Tensor,
    ids: np.ndarray,
    *,
    device: torch.device,
    batch_size: int = 1024,
) -> np.ndarray:
    """Softmax probabilities, shape (len(ids), K) float32, in eval mode."""
    return _batched(lambda b: F.softmax(model(b), dim=1), model, x, ids, device, batch_size)


@torch.no_grad()
def embed(
    model: nn.Module,
    x: torch.Tensor,
    ids: np.ndarray,
    *,
    device: torch.device,
    batch_size: int = 1024,
) -> np.ndarray:
    """Penultimate-layer embeddings, shape (len(ids), D) float32, in eval mode."""
    return _batched(model.embed, model, x, ids, device, batch_size)


def _batched(fn, model, x, ids, device, batch_size) -> np.ndarray:
    model.to(device).eval()
    ids_t = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    # An empty id set still runs one (empty) batch, so the result keeps its (0, K) / (0, D) shape
    # (e.g. TMU's runner-up labels of an empty predicted-hard set).
    outs = [
        fn(rows(x, ids_t[s : s + batch_size], device)).float().cpu()
        for s in range(0, max(len(ids_t), 1), batch_size)
    ]
    return torch.cat(outs).numpy()


def train_from_scratch(
    build: Callable[[], nn.Module],
    x: torch.Tensor,
    y: np.ndarray,
    ids: np.ndarray,
    cfg: TrainConfig,
    *,
    device: torch.device,
    seed: int,
    progress: Progress | None = None,
) -> nn.Module:
    """A fresh model (built under `seed`) trained on pool ids `ids` with their true labels."""
    torch.manual_seed(seed)
    model = build()
    return fit(model, x, [Part(ids, y[ids])], cfg, device=device, seed=seed, progress=progress)
