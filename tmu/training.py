"""One training loop for every stage: original, gold, twin, curriculum and every unlearning method.

A training set is a list of `Part`s over the pool. Each part carries its own labels (true, or
random wrong ones), a loss weight (negative = gradient ascent, as in NegGrad+), a Gaussian input
noise level (TMU's noise-perturbed fine-tuning) and how many samples to draw per epoch (fewer than
the part holds = a fresh random subset each epoch; more = oversampling with repetition).
The pool tensor should already sit on the training device (small datasets) or on the CPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

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


def fit(model: nn.Module, x: torch.Tensor, parts: list[Part], cfg: TrainConfig, *,
        device: torch.device, seed: int, progress: Progress | None = None) -> nn.Module:
    """Train `model` in place on `parts` for `cfg.epochs` epochs; returns it in eval mode.

    x: (N, C, H, W) pool inputs in [0, 1]. Loss per batch = sum_i w_i * CE_i / batch size.
    Deterministic on the CPU for a fixed seed.
    """
    model.to(device).train()
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    ids_t = [torch.as_tensor(p.ids, dtype=torch.long) for p in parts]
    lab_t = [torch.as_tensor(p.labels, dtype=torch.long) for p in parts]
    steps = cfg.epochs * math.ceil(sum(p.count for p in parts) / cfg.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
             if cfg.schedule == "cosine" else None)
    step = 0
    for _ in range(cfg.epochs):
        batch = _epoch(parts, ids_t, lab_t, rng)
        for start in range(0, len(batch[0]), cfg.batch_size):
            chunk = [t[start:start + cfg.batch_size] for t in batch]
            _step(model, opt, x, chunk, device, gen)
            if sched is not None:
                sched.step()
            step += 1
            if progress is not None:
                progress(step / max(steps, 1))
    return model.eval()


def _epoch(parts, ids_t, lab_t, rng) -> tuple[torch.Tensor, ...]:
    """One shuffled epoch as parallel tensors (ids, labels, weights, noise levels)."""
    cols = [[], [], [], []]
    for part, ids, labels in zip(parts, ids_t, lab_t):
        pos = torch.as_tensor(part.draw(rng), dtype=torch.long)
        cols[0].append(ids[pos])
        cols[1].append(labels[pos])
        cols[2].append(torch.full((len(pos),), part.weight))
        cols[3].append(torch.full((len(pos),), part.noise))
    order = torch.as_tensor(rng.permutation(sum(len(c) for c in cols[0])), dtype=torch.long)
    return tuple(torch.cat(c)[order] for c in cols)


def _step(model, opt, x, chunk, device, gen) -> None:
    ids, labels, weights, noise = chunk
    inputs = x[ids.to(x.device)].to(device)
    labels, weights, noise = labels.to(device), weights.to(device), noise.to(device)
    if bool((noise > 0).any()):
        eps = torch.randn(inputs.shape, generator=gen, device=device)
        inputs = (inputs + eps * noise.view(-1, 1, 1, 1)).clamp(0.0, 1.0)
    loss = (F.cross_entropy(model(inputs), labels, reduction="none") * weights).sum() / len(ids)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, ids: np.ndarray, *, device: torch.device,
            batch_size: int = 1024) -> np.ndarray:
    """Softmax probabilities, shape (len(ids), K) float32, in eval mode."""
    return _batched(lambda b: F.softmax(model(b), dim=1), model, x, ids, device, batch_size)


@torch.no_grad()
def embed(model: nn.Module, x: torch.Tensor, ids: np.ndarray, *, device: torch.device,
          batch_size: int = 1024) -> np.ndarray:
    """Penultimate-layer embeddings, shape (len(ids), D) float32, in eval mode."""
    return _batched(model.embed, model, x, ids, device, batch_size)


def _batched(fn, model, x, ids, device, batch_size) -> np.ndarray:
    model.to(device).eval()
    ids_t = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    # An empty id set still runs one (empty) batch, so the result keeps its (0, K) / (0, D) shape
    # (e.g. TMU's runner-up labels of an empty predicted-hard set).
    outs = [fn(x[ids_t[s:s + batch_size].to(x.device)].to(device)).float().cpu()
            for s in range(0, max(len(ids_t), 1), batch_size)]
    return torch.cat(outs).numpy()


def train_from_scratch(build: Callable[[], nn.Module], x: torch.Tensor, y: np.ndarray,
                       ids: np.ndarray, cfg: TrainConfig, *, device: torch.device, seed: int,
                       progress: Progress | None = None) -> nn.Module:
    """A fresh model (built under `seed`) trained on pool ids `ids` with their true labels."""
    torch.manual_seed(seed)
    model = build()
    return fit(model, x, [Part(ids, y[ids])], cfg, device=device, seed=seed, progress=progress)
