"""Attribution maps of chosen samples under several models, and their similarity to gold's.

Methods come from captum (Kokhlikyan et al., 2020): Integrated Gradients (Sundararajan et al.,
2017), Saliency (Simonyan et al., 2014) and Grad-CAM (Selvaraju et al., 2017) on the model's
`cam_layer`, upsampled to the input size with `LayerAttribution.interpolate`. Maps are numpy
arrays (n, H, W), channels summed. A map that is zero everywhere (e.g. Grad-CAM of a saturated
ReLU layer) has no direction: its similarity is NaN and `zero` flags it, so callers show it as
"all-zero" instead of feeding it to a normaliser that divides by its maximum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency
from torch import nn

ZERO_TOL = 1e-12


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IG from a black baseline, 32 steps; (n, C, H, W)."""
    return IntegratedGradients(model).attribute(
        x, baselines=torch.zeros_like(x), target=target, n_steps=32
    )


def saliency(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """|d logit_target / d x|; (n, C, H, W)."""
    return Saliency(model).attribute(x, target=target, abs=True)


def grad_cam(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Grad-CAM on `model.cam_layer`, ReLU'd and bilinearly upsampled; (n, 1, H, W)."""
    cam = LayerGradCam(model, model.cam_layer).attribute(x, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")


ATTRIBUTIONS: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "Integrated Gradients": integrated_gradients,
    "Saliency": saliency,
    "Grad-CAM": grad_cam,
}


def attribute(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor | np.ndarray, method: str
) -> np.ndarray:
    """The `method` map of each sample for class `target`: (n, H, W) float, channels summed."""
    if method not in ATTRIBUTIONS:
        raise ValueError(f"unknown attribution method {method!r}; valid: {sorted(ATTRIBUTIONS)}")
    model = model.eval()
    device = next(model.parameters()).device
    x = x.detach().to(device).float().requires_grad_(True)
    target = torch.as_tensor(np.asarray(target), dtype=torch.long, device=device)
    maps = ATTRIBUTIONS[method](model, x, target)
    return maps.detach().sum(1).cpu().numpy().astype(np.float64)


def is_zero(maps: np.ndarray) -> np.ndarray:
    """(n,) True where a map (n, H, W) has no non-zero value."""
    return np.abs(maps).reshape(len(maps), -1).max(1) <= ZERO_TOL


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-sample cosine similarity of flattened maps (n, H, W); NaN where either map is
    all-zero."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    ok = (na > ZERO_TOL) & (nb > ZERO_TOL)
    out = np.full(len(a), np.nan)
    out[ok] = (a[ok] * b[ok]).sum(1) / (na[ok] * nb[ok])
    return out


@dataclass(frozen=True)
class Explanation:
    """maps[method][model]: (n, H, W); similarity[method][model]: (n,) cosine to the gold model's
    map (NaN where a map is all-zero); zero[method][model]: (n,) all-zero flags."""

    ids: np.ndarray
    target: np.ndarray
    maps: dict[str, dict[str, np.ndarray]]
    similarity: dict[str, dict[str, np.ndarray]]
    zero: dict[str, dict[str, np.ndarray]]


def explain(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    target: np.ndarray,
    *,
    gold: str | Sequence[str] = "gold",
    methods: tuple[str, ...] = tuple(ATTRIBUTIONS),
    ids: np.ndarray | None = None,
) -> Explanation:
    """Maps of samples `x` (n, C, H, W) for class `target` (n,) under every model in `models`, and
    each map's similarity to the gold map. `gold` names the gold model, or several (one per gold
    seed): their mean map is then the gold map, reported under "gold" in their place."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    missing = [g for g in golds if g not in models]
    if missing or not golds:
        raise ValueError(
            f"models {sorted(models)} hold no gold model named "
            f"{', '.join(map(repr, missing or golds))}"
        )
    target = np.asarray(target, dtype=np.int64)
    maps = {
        m: _with_gold_mean(
            {name: attribute(model, x, target, m) for name, model in models.items()}, golds
        )
        for m in methods
    }
    sims = {
        m: {name: cosine_similarity(v, per["gold"]) for name, v in per.items()}
        for m, per in maps.items()
    }
    zero = {m: {name: is_zero(v) for name, v in per.items()} for m, per in maps.items()}
    ids = np.arange(len(x)) if ids is None else np.asarray(ids)
    return Explanation(ids, target, maps, sims, zero)


def _with_gold_mean(per_model: dict[str, np.ndarray], golds: list[str]) -> dict[str, np.ndarray]:
    """The maps with the gold models replaced, at the first one's place, by their mean as "gold"."""
    out = {}
    for name, v in per_model.items():
        if name not in golds:
            out[name] = v
        elif "gold" not in out:
            out["gold"] = np.mean([per_model[g] for g in golds], 0)
    return out
