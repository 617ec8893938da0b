"""Model registry and device resolution.

Every model exposes `embed(x)` (penultimate features, shape (B, D)) and `head` (the last linear
layer), so that `model(x) == model.head(model.embed(x))`; the distance feature and the dashboard's
embedding scatter use `embed`, Grad-CAM uses `cam_layer`.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
import torchvision
from torch import nn


class DeviceError(ValueError):
    """The requested device does not exist on this machine."""


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else the CPU; `cpu`, `cuda` and `cuda:N` are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        _, _, index = name.partition(":")
        if name != "cuda" and not index.isdigit():
            raise DeviceError(f"device {name!r} is malformed; use cuda or cuda:N")
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r} was asked for but this machine has no CUDA GPU; "
                "use --device cpu or auto"
            )
        if int(index or 0) >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r} does not exist; this machine has "
                f"{torch.cuda.device_count()} GPU(s)"
            )
        return torch.device(name)
    raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")


def device_label(device: torch.device) -> str:
    """A human name: 'CPU' or the GPU's product name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "CPU"


class SmallCNN(nn.Module):
    """Two conv blocks and a 128-d embedding; works for 8x8 up to 32x32 inputs, 1 or 3 channels."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 16, 128), nn.ReLU())
        self.head = nn.Linear(128, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        return self.features[3]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class ResNet18Cifar(nn.Module):
    """torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 first conv, no max-pool)."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        net = torchvision.models.resnet18(num_classes=num_classes)
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.head = net.fc
        net.fc = nn.Identity()
        self.body = net

    @property
    def cam_layer(self) -> nn.Module:
        return self.body.layer4

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


MODELS: dict[str, Callable[[int, int], nn.Module]] = {
    "cnn": SmallCNN,
    "resnet18": ResNet18Cifar,
}


def build_model(
    name: str, in_channels: int, num_classes: int, seed: int | None = None
) -> nn.Module:
    """A freshly initialised model from the registry (seeded when `seed` is given)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {sorted(MODELS)}")
    if seed is not None:
        torch.manual_seed(seed)
    return MODELS[name](in_channels, num_classes)


def clone_model(model: nn.Module) -> nn.Module:
    """A deep copy with its own parameters (the source is never mutated by training the copy)."""
    return copy.deepcopy(model)
