"""Layer-wise representation similarity to the gold model: linear CKA (centred kernel
alignment; Kornblith, Norouzi, Lee & Hinton, "Similarity of Neural Network Representations
Revisited", ICML 2019).

For activations X (n, d1) and Y (n, d2) of the same n inputs, centred over the inputs,

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)          (feature form, cheap if n > d)
              = <HKH, HLH>_F / (||HKH||_F ||HLH||_F),  K = XX^T, L = YY^T   (Gram form, d > n)

with H the centring matrix. It is 1 for identical representations, invariant to orthogonal
transforms and isotropic scaling of either side (so it compares two independently trained
networks, whose units are not matched), and near 0 for unrelated ones. An unlearned model that
matches gold's layer-wise CKA on D_f as closely as another gold seed does (the gold-vs-gold
noise floor) represents the forgotten data like retraining would.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch
from torch import nn

from ..accel import eval_batch_size
from ..models import model_blocks
from ..training import rows
from .source import RunData, seeded_sample

CKA_SETS = ("forget", "test")


def _centred(x) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    x = x.reshape(len(x), -1).to(torch.float64)
    return x - x.mean(0, keepdim=True)


def linear_cka(x, y) -> float:
    """Linear CKA between activations `x` (n, ...) and `y` (n, ...) of the same n inputs
    (numpy or torch; trailing axes are flattened). Uses the feature form when both widths are
    below n, else the Gram form; the two are equal. NaN when either side is constant."""
    x, y = _centred(x), _centred(y)
    if len(x) != len(y):
        raise ValueError(f"CKA needs the same inputs on both sides, got {len(x)} and {len(y)} rows")
    if max(x.shape[1], y.shape[1]) < len(x):
        cross = torch.linalg.matrix_norm(y.T @ x) ** 2
        norm = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    else:
        k, l_ = x @ x.T, y @ y.T  # already centred: HKH = (HX)(HX)^T
        cross = (k * l_).sum()
        norm = torch.linalg.matrix_norm(k) * torch.linalg.matrix_norm(l_)
    return float(cross / norm) if norm > 0 else float("nan")


def unit_gram(x: torch.Tensor) -> torch.Tensor:
    """The centred Gram matrix HXX^TH of activations x (n, d), scaled to unit Frobenius norm,
    float64; CKA of two inputs is then the sum of the elementwise product of their unit Grams."""
    x = x.reshape(len(x), -1).float()
    x = x - x.mean(0, keepdim=True)
    k = (x @ x.T).to(torch.float64)
    norm = torch.linalg.matrix_norm(k)
    return k / norm if norm > 0 else torch.full_like(k, float("nan"))


@torch.no_grad()
def block_grams(
    model: nn.Module, x: torch.Tensor, ids: np.ndarray, device: torch.device, batch_size: int
) -> dict[str, torch.Tensor]:
    """The unit Gram (n, n) of each main block's output (`tmu.models.model_blocks`) on pool ids
    `ids`, in eval mode, `batch_size` rows per forward pass."""
    model.to(device).eval()
    blocks = model_blocks(model)
    outs: dict[str, list[torch.Tensor]] = {name: [] for name in blocks}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: outs[name].append(out.detach().flatten(1).clone())
        )
        for name, module in blocks.items()
    ]
    try:
        for s in range(0, len(ids), batch_size):
            model(rows(x, ids[s : s + batch_size], device))
    finally:
        for h in hooks:
            h.remove()
    acts = {name: torch.cat(parts) for name, parts in outs.items()}
    for name, a in acts.items():
        if len(a) != len(ids):  # a module reused inside one forward pass
            raise RuntimeError(f"block {name!r} ran {len(a) / max(len(ids), 1):g}x per input")
    return {name: unit_gram(a) for name, a in acts.items()}


@dataclass(frozen=True)
class CkaTable:
    """Linear CKA to every gold seed, per data role and block.

    values: (S, M, G, L) CKA between target model m (`models`: original, then each method) and
    gold seed g (`golds`) on data role s (`sets`) at block l (`layers`).
    floor: (S, P, L) CKA between the gold pairs `pairs` (P, 2) of gold indices; P = 0 with one
    gold seed. ids: data role -> the pool ids it was measured on (seeded samples)."""

    sets: tuple[str, ...]
    models: tuple[str, ...]
    golds: tuple[str, ...]
    layers: tuple[str, ...]
    values: np.ndarray
    floor: np.ndarray
    pairs: np.ndarray
    ids: dict[str, np.ndarray]

    def vs_gold(self, set_: str = "forget") -> np.ndarray:
        """(M, L) CKA of each target model to gold, averaged over gold seeds."""
        return self.values[self._set(set_)].mean(1)

    def noise_floor(self, set_: str = "forget") -> np.ndarray | None:
        """(L,) gold-vs-gold CKA averaged over seed pairs; None with a single gold seed."""
        return self.floor[self._set(set_)].mean(0) if len(self.pairs) else None

    def _set(self, set_: str) -> int:
        if set_ not in self.sets:
            raise ValueError(f"unknown set {set_!r}; CKA was measured on {list(self.sets)}")
        return self.sets.index(set_)


def cka_table(data: RunData, *, max_samples: int = 500, batch_size: int | None = None) -> CkaTable:
    """Linear CKA of original and each unlearned model to every gold seed, and between gold
    seeds (the noise floor), block by block, on seeded samples of at most `max_samples` of D_f
    and of T. Gram form throughout (memory n^2 per block, whatever the block's width)."""
    if max_samples < 2:
        raise ValueError(f"max_samples must be at least 2, got {max_samples}")
    golds, targets = data.golds, data.targets
    batch = batch_size or eval_batch_size(data.device)
    rng = data.rng(3)
    ids = {k: seeded_sample(data.split[k], max_samples, rng) for k in CKA_SETS}
    layers = tuple(model_blocks(data.models["original"]))
    pairs = np.asarray(list(combinations(range(len(golds)), 2)), dtype=np.int64).reshape(-1, 2)
    values = np.full((len(CKA_SETS), len(targets), len(golds), len(layers)), np.nan)
    floor = np.full((len(CKA_SETS), len(pairs), len(layers)), np.nan)

    def cka(a: dict, b: dict) -> list[float]:
        return [float((a[n] * b[n]).sum()) for n in layers]

    for s, k in enumerate(CKA_SETS):
        if len(ids[k]) < 2:
            continue  # CKA of fewer than two samples is undefined: the row stays NaN
        grams = lambda name: block_grams(data.models[name], data.x, ids[k], data.device, batch)  # noqa: E731
        gold = [grams(g) for g in golds]
        for p, (i, j) in enumerate(pairs):
            floor[s, p] = cka(gold[i], gold[j])
        for m, name in enumerate(targets):
            own = grams(name)
            values[s, m] = [cka(own, g) for g in gold]
    return CkaTable(CKA_SETS, tuple(targets), tuple(golds), layers, values, floor, pairs, ids)
