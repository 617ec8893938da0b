"""The GPU fast path: what training and inference do differently on a CUDA device.

`FastPath.resolve` turns a recipe's switches (`TrainConfig.amp`, `channels_last`, `compile`,
`augment`) into decisions for one device and pool; on the CPU every switch left at "auto" is off
(augmentation aside, which is on for 3x32x32 colour images on any device and off for the
grayscale datasets), so CPU results are those of the plain loop.
A pool whose values are all k/255 (8-bit images) sits on the GPU as uint8 codes, a quarter of the
float32 memory, and `decode` turns gathered rows back into exactly the float32 values the pool
held (a table lookup, not arithmetic, so no rounding can differ). `random_crop_flip` augments a
batch where it lies, on the GPU.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig

LEVELS = torch.arange(256, dtype=torch.float32) / 255.0
"""The float32 value of each uint8 code: k / 255, as the data loaders scale 8-bit images."""
ENCODE_CHUNK = 4096  # images checked at a time (bounds the int64 index tensor of the check)
EVAL_BATCH = {"cuda": 8192}  # inference batch by device type; 1024 elsewhere
CROP_PAD = 4  # pixels of zero padding around an image before a random crop (He et al., 2016)


def encode_pool(x: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) float32 as uint8 codes k when every value is exactly LEVELS[k] (k/255),
    else x itself (e.g. scikit-learn digits, whose values are k/16)."""
    if x.dtype != torch.float32:
        return x
    codes = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    for s in range(0, len(x), ENCODE_CHUNK):
        chunk = x[s : s + ENCODE_CHUNK]
        code = chunk.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
        if not torch.equal(decode(code), chunk):
            return x
        codes[s : s + ENCODE_CHUNK] = code
    return codes


@lru_cache(maxsize=None)
def _levels(device: torch.device) -> torch.Tensor:
    return LEVELS.to(device)


def decode(x: torch.Tensor) -> torch.Tensor:
    """Gathered pool rows as float32: uint8 codes looked up in LEVELS, any other tensor as is."""
    if x.dtype != torch.uint8:
        return x
    return _levels(x.device)[x.long()]


def crop_flip(
    x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int = CROP_PAD
) -> torch.Tensor:
    """Image i of x (B, C, H, W) replaced by the H x W window at row dy[i], column dx[i] of the
    image zero-padded by `pad` on every side (dy, dx in 0..2*pad; pad, pad = unshifted), mirrored
    left-right where flip[i]. One gather, where x lies; the result is (B, C, H, W) in the
    channels-last layout."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    cols = torch.arange(w, device=x.device)
    cols = torch.where(flip.bool()[:, None], w - 1 - cols, cols) + dx[:, None]  # (B, W)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Indices around the channel slice put the broadcast (B, H, W) dimensions first: (B, H, W, C).
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = CROP_PAD) -> torch.Tensor:
    """`crop_flip` with shifts uniform in 0..2*pad and a fair coin per image, drawn from `gen`
    (which must live on x's device)."""
    shifts = torch.randint(0, 2 * pad + 1, (2, len(x)), generator=gen, device=x.device)
    flip = torch.randint(0, 2, (len(x),), generator=gen, device=x.device)
    return crop_flip(x, shifts[0], shifts[1], flip, pad)


@dataclass(frozen=True)
class FastPath:
    """The fast-path decisions for one training run: bf16 autocast, channels-last inputs and
    weights, a compiled forward, crop-and-flip augmentation."""

    device: torch.device
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    augment: bool = False

    @classmethod
    def resolve(
        cls, cfg: TrainConfig, device: torch.device, x: torch.Tensor, model: nn.Module
    ) -> FastPath:
        """The decisions for training `model` on pool `x` (N, C, H, W) on `device`."""
        cuda = device.type == "cuda"
        conv = any(p.ndim == 4 for p in model.parameters())
        if cuda:
            torch.backends.cudnn.benchmark = True  # fixed batch shapes: pick the fastest kernels
        return cls(
            device,
            amp=cfg.amp == "bf16" or (cfg.amp == "auto" and cuda),
            channels_last=conv
            and (cfg.channels_last == "on" or (cfg.channels_last == "auto" and cuda)),
            compile=cfg.compile and cuda,
            augment=cfg.augment == "crop_flip"
            or (cfg.augment == "auto" and tuple(x.shape[1:]) == (3, 32, 32)),
        )

    def prepare(self, model: nn.Module) -> nn.Module:
        """`model` in the chosen layout, and the module the training steps call (compiled or
        `model` itself; both share the parameters)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return torch.compile(model) if self.compile else model

    def inputs(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """A training batch (B, C, H, W) augmented and laid out as decided."""
        if self.augment:
            x = random_crop_flip(x, gen)
        if self.channels_last:
            return x.contiguous(memory_format=torch.channels_last)
        return x.contiguous() if self.augment else x

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context for the forward pass and loss: bf16 autocast, or nothing."""
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)


def eval_batch_size(device: torch.device) -> int:
    """Rows per inference batch: large on a GPU, where the pool already sits on the device."""
    return EVAL_BATCH.get(device.type, 1024)
