"""Model registry and device resolution.

Every model exposes `embed(x)` (penultimate features, shape (B, D)) and `head` (the last linear
layer), so that `model(x) == model.head(model.embed(x))`; the distance feature and the dashboard's
embedding scatter use `embed`, Grad-CAM uses `cam_layer`, and the layer-wise CKA view
(`tmu.inspect.cka`) hooks the main blocks that `blocks` lists in forward order.
`MODELS` maps a name to a `ModelSpec`: how to build the network and its training recipe, the
`TrainConfig` overrides it trains well with, which `apply_recipe` fills into a run's overrides.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
import dataclasses
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torchvision
from torch import nn

from .config import RunConfig, TrainConfig


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

    @property
    def blocks(self) -> dict[str, nn.Module]:
        """Main blocks in forward order, by name (each module's output is that block's)."""
        f = self.features
        return {"block1": f[2], "block2": f[5], "embed": self.fc, "head": self.head}

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

    @property
    def blocks(self) -> dict[str, nn.Module]:
        """Main blocks in forward order, by name: the stem's ReLU (torchvision uses that module
        once, in the stem), the four stages, the embedding (the emptied `fc`) and the head."""
        b = self.body
        stages = {f"layer{k}": getattr(b, f"layer{k}") for k in range(1, 5)}
        return {"stem": b.relu, **stages, "embed": b.fc, "head": self.head}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def conv_bn(c_in: int, c_out: int, pool: bool = False) -> nn.Sequential:
    """3x3 conv, then a 2x2 max-pool when `pool` (before the batch-norm and ReLU, which then run
    on a quarter of the pixels), batch-norm, ReLU."""
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    layers += [nn.MaxPool2d(2)] if pool else []
    return nn.Sequential(*layers, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """x + two conv-BN-ReLU blocks of x (same width and size)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ScaledLinear(nn.Linear):
    """A linear layer whose output is multiplied by a fixed `scale` (a small scale keeps the
    first logits small, so the softmax starts out near uniform)."""

    def __init__(self, in_features: int, out_features: int, scale: float, bias: bool = False):
        super().__init__(in_features, out_features, bias=bias)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.scale


class ResNet9(nn.Module):
    """The small residual network of the fast CIFAR-10 training runs (D. Page, "How to train
    your ResNet", 2018; airbench, K. Jordan, 2024): a conv-BN-ReLU prep layer, three stages that
    widen and halve the image with a max-pool, the first and last followed by a residual block, a
    global max-pool and a bias-free linear head scaled by 1/8.

    widths: channels of the prep layer and the three stages. Works for 1 or 3 channels and any
    image of at least 8x8 (the global pool is adaptive); embed is (B, widths[3]).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, int, int, int] = (64, 128, 256, 512),
        scale: float = 0.125,
    ):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.prep = conv_bn(in_channels, w0)
        self.layer1 = nn.Sequential(conv_bn(w0, w1, pool=True), Residual(w1))
        self.layer2 = conv_bn(w1, w2, pool=True)
        self.layer3 = nn.Sequential(conv_bn(w2, w3, pool=True), Residual(w3))
        self.pool = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.head = ScaledLinear(w3, num_classes, scale)

    @property
    def cam_layer(self) -> nn.Module:
        return self.layer3

    @property
    def blocks(self) -> dict[str, nn.Module]:
        """Main blocks in forward order, by name."""
        names = ("prep", "layer1", "layer2", "layer3")
        return {**{n: getattr(self, n) for n in names}, "embed": self.pool, "head": self.head}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.layer3(self.layer2(self.layer1(self.prep(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: `build(in_channels, num_classes)` makes a fresh network; `recipe` holds
    the TrainConfig overrides it trains well with (empty = the TrainConfig defaults)."""

    build: Callable[[int, int], nn.Module]
    recipe: dict[str, Any]
    description: str


RESNET9_RECIPE: dict[str, Any] = {
    # Page's schedule is 24 epochs (94 % on CIFAR-10); his 10-epoch runs add tricks (input
    # whitening, test-time flips, weight averaging) that this project does not use, so we run in
    # between.
    "epochs": 16,
    "batch_size": 512,  # Page
    # Page: peak lr 0.4 and weight decay 5e-4 x batch size on a summed loss, which on a mean loss
    # (ours) is lr 0.4 and weight decay 5e-4; Nesterov momentum 0.9.
    "lr": 0.4,
    "weight_decay": 5e-4,
    "momentum": 0.9,
    "nesterov": True,
    "schedule": "onecycle",  # Page: linear warm-up to the peak over 5 of 24 epochs, then to 0
    "label_smoothing": 0.2,  # Page's "bag of tricks" (and airbench)
}
RESNET18_RECIPE: dict[str, Any] = {
    # lr 0.1, momentum 0.9, weight decay 5e-4 and batch 256: the original-model recipe of SalUn
    # (Fan et al., ICLR 2024; OPTML-Group/Unlearn-Saliency, arg_parser.py), also kuangliu's
    # pytorch-cifar ResNet-18 (lr 0.1, momentum 0.9, weight decay 5e-4, cosine annealing).
    "batch_size": 256,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",  # kuangliu's pytorch-cifar
    # SalUn trains 182 epochs and kuangliu 200; 30 with cosine annealing keeps an original and
    # its gold models affordable (our choice, not a published one).
    "epochs": 30,
}

MODELS: dict[str, ModelSpec] = {
    "cnn": ModelSpec(SmallCNN, {}, "Two conv blocks, 128-d embedding: the fast CPU default."),
    "resnet9": ModelSpec(
        ResNet9, RESNET9_RECIPE, "Page's ResNet-9: fast CIFAR-scale training on a GPU."
    ),
    "resnet18": ModelSpec(
        ResNet18Cifar,
        RESNET18_RECIPE,
        "ResNet-18 with the CIFAR stem: the unlearning papers' model.",
    ),
}


def memorise(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The memorising variant of a model's recipe: no weight decay, no label smoothing and four
    times the epochs, so that the network fits every training label, wrong ones included, as
    the unlearning papers' long ResNet runs do (TMU's paper trains 200 epochs). Measured for
    `cnn` (80 epochs): it fits 99.7 % of a 10 % mislabeled mnist5k D and all of digits'
    (docs/benchmarks.md §12); the factor for the ResNets is our choice, not measured here."""
    epochs = recipe.get("epochs", TrainConfig().epochs)
    return {**recipe, "weight_decay": 0.0, "label_smoothing": 0.0, "epochs": 4 * epochs}


RECIPES: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "standard": dict,  # the model's own recipe
    "memorise": memorise,
}
"""Training recipes: each maps a model's recipe (its `train` overrides) to the one a run uses."""


def apply_recipe(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values`, a nested RunConfig override dict (keys such as `model`, `recipe`, `train:
    {...}`), with every `train` key that the model's recipe, as the training recipe `recipe`
    (RECIPES) changes it, sets and `values` does not, filled in; keys the user set win. The
    model and recipe default to RunConfig's. A new dict (`values` is left unchanged); an unknown
    model or recipe or a `train` that is not a dict is left as is, for the config's validation
    to report."""
    out = dict(values)
    default = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    spec = MODELS.get(values.get("model", default["model"]))
    recipe = RECIPES.get(values.get("recipe", default["recipe"]))
    train = values.get("train") or {}
    if spec is None or recipe is None or not isinstance(train, Mapping):
        return out
    filled = recipe(spec.recipe)
    if filled:
        out["train"] = {**filled, **train}
    return out


def build_model(
    name: str, in_channels: int, num_classes: int, seed: int | None = None
) -> nn.Module:
    """A freshly initialised model from the registry (seeded when `seed` is given)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {sorted(MODELS)}")
    if seed is not None:
        torch.manual_seed(seed)
    return MODELS[name].build(in_channels, num_classes)


class WeightsError(ValueError):
    """A weights file that cannot be used as the original model; the message names the file."""


def file_fingerprint(path: str | Path) -> str:
    """A hash of a file's bytes (the store keys a loaded original by content, not by path)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def file_stamp(path: str | Path | None) -> str:
    """A cheap fingerprint of a file as it is now, from its stat alone (absolute path, size,
    mtime_ns; "missing" when absent; "" for None): for keys computed on every page poll, where
    hashing a large weights file each time would cost more than the page (the store keys the
    model itself by `file_fingerprint`, its bytes)."""
    if not path:
        return ""
    target = Path(path).expanduser().absolute()
    try:
        st = target.stat()
    except OSError:
        return hashlib.sha256(f"{target}|missing".encode()).hexdigest()[:16]
    return hashlib.sha256(f"{target}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WeightsLimits:
    """What a `.pt` file (a zip archive since torch 1.6) may unpack to before torch.load reads
    it: torch inflates compressed entries, so a 300 KB file can hold a 300 MB tensor."""

    max_bytes: int = 4 * 2**30  # all entries, unpacked (env var TMU_MAX_WEIGHTS_BYTES)
    max_entries: int = 100_000  # one per tensor storage, plus a few records
    max_ratio: float = 20.0  # unpacked / packed size of one compressed entry over 1 MiB


def weights_limits() -> WeightsLimits:
    """The default limits, with env var TMU_MAX_WEIGHTS_BYTES (bytes) applied."""
    text = os.environ.get("TMU_MAX_WEIGHTS_BYTES")
    if not text:
        return WeightsLimits()
    if not text.isdigit() or int(text) < 1:
        raise WeightsError(f"TMU_MAX_WEIGHTS_BYTES={text!r} must be a positive whole number")
    return WeightsLimits(max_bytes=int(text))


def check_weights_archive(path: str | Path, limits: WeightsLimits | None = None) -> int:
    """The bytes `path` unpacks to, checked against `limits` from the zip's directory alone
    (nothing is inflated): too many entries, an entry that expands more than `max_ratio` (real
    weights barely compress; a run of zeros does 1000x) or a total over `max_bytes` is a
    WeightsError naming the file and the entry. A legacy (pre-zip) torch file is bounded by
    its own size."""
    path, limits = Path(path), limits or weights_limits()
    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":
            return path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise WeightsError(
            f"weights file {str(path)!r} cannot be read as a torch state_dict (a damaged "
            f"archive: {err})"
        ) from None
    if len(infos) > limits.max_entries:
        raise WeightsError(
            f"weights file {str(path)!r} holds {len(infos):,} entries (limit "
            f"{limits.max_entries:,}); refused"
        )
    total = 0
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > 2**20:
            if ratio > limits.max_ratio:
                raise WeightsError(
                    f"weights file {str(path)!r}: entry {info.filename!r} expands {ratio:.0f}x "
                    f"to {info.file_size:,} bytes (limit {limits.max_ratio:g}x): an archive "
                    "bomb? refused"
                )
        total += info.file_size
        if total > limits.max_bytes:
            raise WeightsError(
                f"weights file {str(path)!r} unpacks to more than {limits.max_bytes:,} bytes "
                "(limit, env var TMU_MAX_WEIGHTS_BYTES); refused"
            )
    return total


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict in a `.pt` file saved elsewhere: a plain state_dict, or a checkpoint dict
    holding one under `state_dict` or `model`; a `module.` prefix (DataParallel) is dropped.
    Loaded with `weights_only=True`: a file that carries code (any pickled object other than
    tensors and plain containers) is refused and never executed; before that, the archive's
    entries are checked against `weights_limits()` (`check_weights_archive`), so a small file
    that would inflate to gigabytes is refused unread."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    check_weights_archive(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsError(
            f"weights file {str(path)!r} is refused: it holds more than tensors (a pickle that "
            f"could run code is never loaded): {' '.join(str(err).split())[:200]}"
        ) from None
    except Exception as err:  # truncated, not a torch file at all
        raise WeightsError(
            f"weights file {str(path)!r} cannot be read as a torch state_dict "
            f"({type(err).__name__}: {' '.join(str(err).split())[:200]})"
        ) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        raise WeightsError(
            f"weights file {str(path)!r} holds no state_dict (a dict of parameter name -> tensor)"
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_weights(model: nn.Module, path: str | Path, name: str, num_classes: int) -> nn.Module:
    """`model` (registry architecture `name`) with the weights of `path`; a mismatch (another
    architecture, class count or input channels) is a WeightsError saying which."""
    return fit_weights(model, read_state_dict(path), name, num_classes, path)


def fit_weights(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    name: str,
    num_classes: int,
    path: str | Path,
) -> nn.Module:
    """`model` with `state` loaded (the weights file `path` held it), or a WeightsError saying
    which mismatch (class count, architecture, input channels) stops it. `state` may hold
    stand-in tensors of the right shapes (`torch.zeros(()).expand(shape)`): a fit can be
    checked from a file's shapes alone, without its bytes."""
    head = next((v for k, v in state.items() if k.startswith("head.") and v.ndim == 2), None)
    if head is not None and head.shape[0] != num_classes:
        raise WeightsError(
            f"weights file {str(path)!r} has {head.shape[0]} output classes; the dataset has "
            f"{num_classes}"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines()[1:] if ln.strip()][:3]
        raise WeightsError(
            f"weights file {str(path)!r} does not fit model {name!r}: {' '.join(lines)[:300]}"
        ) from None
    return model.eval()


def model_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The main blocks of a registry model in forward order (its `blocks`), by name; a network
    that does not declare them is a TypeError naming its class."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, dict) or not blocks:
        raise TypeError(
            f"{type(model).__name__} does not declare its main blocks (a `blocks` property "
            "mapping a name to a submodule, in forward order)"
        )
    return blocks


def clone_model(model: nn.Module) -> nn.Module:
    """A deep copy with its own parameters (the source is never mutated by training the copy)."""
    return copy.deepcopy(model)
