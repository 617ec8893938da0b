"""One training loop for every stage: original, gold, twin, curriculum and every unlearning method.

A training set is a list of `Part`s over the pool. Each part carries its own labels (true, or
random wrong ones), a loss weight (negative = gradient ascent, as in NegGrad+), a Gaussian input
noise level (TMU's noise-perturbed fine-tuning) and how many samples to draw per epoch (fewer than
the part holds = a fresh random subset each epoch; more = oversampling with repetition).
A loss is a small function of (model, Batch): weighted cross-entropy by default, plain
cross-entropy, or a method's own (distillation, a weight penalty). The recipe (epochs, lr, batch
size, momentum, weight decay, schedule, label smoothing) is a `TrainConfig`.
The pool tensor should already sit on the training device (small datasets) or on the CPU; it may
hold uint8 codes of k/255 values (`tmu.accel.encode_pool`), which `rows` decodes. On a GPU the
loop takes the fast path of `tmu.accel` (bf16 autocast, channels-last, augmentation on the
device) and never waits for the device between steps; on the CPU it is the plain loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import threads
from .accel import FastPath, decode, eval_batch_size
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
    """One mini-batch on the compute device: inputs x (B, C, H, W) (augmented, noise already
    added), the labels its parts carry y (B,), per-sample loss weights (B,), the index of the part
    each sample came from `part` (B,), `done`, the fraction of the training finished before this
    step, and the recipe's label smoothing (for the cross-entropy losses)."""

    x: torch.Tensor
    y: torch.Tensor
    weight: torch.Tensor
    part: torch.Tensor
    done: float
    smoothing: float = 0.0


Loss = Callable[[nn.Module, Batch], torch.Tensor]


def weighted_cross_entropy(model: nn.Module, batch: Batch) -> torch.Tensor:
    """sum_i w_i * CE_i / B: each part's weight (negative = gradient ascent, as in NegGrad+)."""
    ce = F.cross_entropy(model(batch.x), batch.y, reduction="none", label_smoothing=batch.smoothing)
    return (ce * batch.weight).sum() / len(batch.y)


def cross_entropy(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Plain mean cross-entropy on the parts' labels (weights ignored)."""
    return F.cross_entropy(model(batch.x), batch.y, label_smoothing=batch.smoothing)


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
    """Rows `ids` of the pool tensor `x` as float32 on `device`: gathered where `x` lives, moved
    to `device`, then decoded there if `x` holds uint8 codes (`tmu.accel.decode`)."""
    return decode(x[torch.as_tensor(ids, dtype=torch.long).to(x.device)].to(device))


def sgd(model: nn.Module, cfg: TrainConfig, weight_decay: float | None = None) -> torch.optim.SGD:
    """The project's optimizer: SGD with the recipe's lr, momentum, Nesterov flag and weight
    decay."""
    decay = cfg.weight_decay if weight_decay is None else weight_decay
    return torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=decay,
        nesterov=cfg.nesterov,
    )


ONECYCLE_WARMUP = 0.2  # share of the steps spent warming up: Page's ResNet-9 ran 5 of 24 epochs


def scheduler(
    opt: torch.optim.Optimizer, cfg: TrainConfig, steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The recipe's per-step lr schedule over `steps` steps (None: constant lr)."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=cfg.lr,
            total_steps=steps,
            pct_start=ONECYCLE_WARMUP,
            anneal_strategy="linear",
            cycle_momentum=False,  # keep the recipe's momentum
        )
    return None


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

    x: (N, C, H, W) pool inputs in [0, 1] (float32, or uint8 codes, see `rows`); its shape tells
    whether `cfg.augment="auto"` augments (3x32x32). Deterministic on the CPU for a fixed seed:
    epochs are shuffled by numpy's default_rng(seed), or default_rng([seed, salt]) with a salt (so
    that repeated calls, such as SCRUB's phases, draw differently); input noise and augmentation
    by a torch generator seeded with `seed`. On CUDA see `tmu.accel.FastPath`.
    opt: an optimizer to carry on with (momentum kept across calls); a fresh `sgd` otherwise.
    mask: one 0/1 tensor per parameter; only the weights under a 1 change, and weight decay then
    acts inside the mask only (SGD's own decay would move the frozen weights).
    clip: a bound on the gradient's global l2 norm per step (None: no clipping).
    stop: called with the model (in eval mode) before the first step and every `check_every`
    steps; training ends once it returns True (a method stopped at a target, see
    `tmu.unlearn.base.ForgetTarget`: a model already at its target is returned untrained).
    """
    model.to(device).train()
    fast = FastPath.resolve(cfg, device, x, model)
    forward = fast.prepare(model)
    rng = np.random.default_rng(seed if salt is None else [seed, salt])
    gen = torch.Generator(device=device).manual_seed(seed)
    steps = max(cfg.epochs * math.ceil(sum(p.count for p in parts) / cfg.batch_size), 1)
    if opt is None:
        opt = sgd(model, cfg, weight_decay=0.0 if mask is not None else None)
    sched = scheduler(opt, cfg, steps)
    step = 0
    if stop is not None and stop(model.eval()):
        return model
    model.train()
    for _ in range(cfg.epochs):
        threads.rebalance()  # this process's share of the cores, if it shares them
        cols = _epoch(parts, rng)
        # One host-to-device copy per epoch; batches are slices. Whether a batch needs noise is
        # read from the host copy, so no step waits for the device.
        noise = cols[3]
        ids, *on_device = (torch.as_tensor(c) for c in cols)
        ids, on_device = _to(ids, x.device), [_to(t, device) for t in on_device]
        for start in range(0, len(ids), cfg.batch_size):
            sl = slice(start, start + cfg.batch_size)
            noisy = bool((noise[sl] > 0).any())
            chunk = [t[sl] for t in on_device]
            batch = _batch(x, ids[sl], chunk, noisy, step / steps, gen, fast, cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            with fast.autocast():
                value = loss(forward, batch)
            value.backward()
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


def _epoch(parts: list[Part], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """One shuffled epoch as parallel host arrays: pool ids and labels (int64), weights and noise
    levels (float32), part index (int64)."""
    pos = [p.draw(rng) for p in parts]
    cols = [
        np.concatenate([np.asarray(p.ids)[q] for p, q in zip(parts, pos)]),
        np.concatenate([np.asarray(p.labels)[q] for p, q in zip(parts, pos)]),
        np.concatenate([np.full(len(q), p.weight, dtype=np.float32) for p, q in zip(parts, pos)]),
        np.concatenate([np.full(len(q), p.noise, dtype=np.float32) for p, q in zip(parts, pos)]),
        np.concatenate([np.full(len(q), k) for k, q in enumerate(pos)]),
    ]
    order = rng.permutation(len(cols[0]))
    return tuple(c[order].astype(np.int64 if c.dtype.kind in "iu" else np.float32) for c in cols)


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host tensor `t` on `device`; to a GPU through pinned memory, without waiting for it."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _batch(x, ids, on_device, noisy: bool, done: float, gen, fast: FastPath, smoothing) -> Batch:
    """The batch of pool rows `ids` (on x's device) with its label, weight, noise and part columns
    (on the training device): augmented, laid out and noised as `fast` and `noisy` say."""
    labels, weights, noise, part = on_device
    inputs = fast.inputs(rows(x, ids, fast.device), gen)
    if noisy:
        eps = torch.randn(inputs.shape, generator=gen, device=fast.device)
        inputs = (inputs + eps * noise.view(-1, 1, 1, 1)).clamp(0.0, 1.0)
    return Batch(inputs, labels, weights, part, done, smoothing)


@torch.no_grad()
def predict(
    model: nn.Module,
    x: torch.Tensor,
    ids: np.ndarray,
    *,
    device: torch.device,
    batch_size: int | None = None,
) -> np.ndarray:
    """Softmax probabilities, shape (len(ids), K) float32, in eval mode (float32 compute;
    `batch_size` rows at a time, by default 8192 on a GPU and 1024 on the CPU)."""
    return _batched(lambda b: F.softmax(model(b), dim=1), model, x, ids, device, batch_size)


@torch.no_grad()
def embed(
    model: nn.Module,
    x: torch.Tensor,
    ids: np.ndarray,
    *,
    device: torch.device,
    batch_size: int | None = None,
) -> np.ndarray:
    """Penultimate-layer embeddings, shape (len(ids), D) float32, in eval mode (batches as in
    `predict`)."""
    return _batched(model.embed, model, x, ids, device, batch_size)


PADDED_DEVICES = ("cuda",)
"""Devices whose evaluation batches are padded to a few fixed shapes: cuDNN's autotuner
(`benchmark=True` on the fast path) tunes every new input shape again, and ragged last batches of
every set would each cost a tuning."""


def padded_size(n: int, batch_size: int) -> int:
    """The shape a batch of `n` rows is padded to: the next power of two (at least 64), at most
    `batch_size`; so every evaluation uses one of a handful of shapes."""
    return min(batch_size, max(64, 1 << max(n - 1, 0).bit_length()))


def _batched(fn, model, x, ids, device, batch_size) -> np.ndarray:
    model.to(device).eval()
    batch_size = batch_size or eval_batch_size(device)
    ids_t = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    pad = device.type in PADDED_DEVICES
    # An empty id set still runs one (empty) batch, so the result keeps its (0, K) / (0, D) shape
    # (e.g. TMU's runner-up labels of an empty predicted-hard set).
    outs = []
    for s in range(0, max(len(ids_t), 1), batch_size):
        chunk = ids_t[s : s + batch_size]
        n = len(chunk)
        if pad and 0 < n < padded_size(n, batch_size):  # repeat the first row: eval mode is
            # per-sample (batchnorm uses its running statistics), so padding changes no output
            chunk = torch.cat([chunk, chunk[:1].expand(padded_size(n, batch_size) - n)])
        outs.append(fn(rows(x, chunk, device)).float().cpu()[:n])
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
