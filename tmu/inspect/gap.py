"""Where the gap to gold lives: agreement with the gold ensemble and the accuracy gap, binned by
memorisation (on D_f) and by distance to the forget set (on the retained and test samples
nearest it), and a two-sided membership score.

* Memorisation of a forget sample (Feldman's notion, with the gold models as the "without"
  half): the original's probability of its training label minus the gold ensemble's. Near 1: only
  seeing the sample taught it (a memorised wrong label, an atypical digit); near 0: the rest of
  the data teaches it too.
* Distance to D_f: cosine distance, in the original's penultimate features, from a retained or
  test sample to its nearest forget sample (`Neighbourhood`, computed once in the job). Unlearning
  leaks into the neighbours of what it forgets ("Forgetting Has Neighbors", arXiv 2605.31317).
* Two-sided membership: a model's member rate on D_f minus the golds' mean. Below zero the forget
  set looks *less* like members than under a retrained model: over-forgetting, as visible to an
  attacker as under-forgetting above zero.

Every figure here compares with the gold *ensemble* (mean softmax over the gold seeds), as every
single-sample view does; the report's summaries average over gold seeds instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..training import embed
from .source import GOLD_ENSEMBLE, RunData, probs_at, seeded_sample

MEMORISATION_EDGES = (-1.0, 0.1, 0.3, 0.6, 1.0)
"""Bins of memorisation: none, some, much, memorised."""
DISTANCE_BINS = 4
"""Distance to D_f in quartiles of the retained and test samples' distances."""
MAX_REFERENCE = 5000  # retained + test samples whose distance is computed (seeded sample)


@dataclass(frozen=True)
class Neighbourhood:
    """Retained and test samples (`ids`, at most MAX_REFERENCE, seeded) and each one's cosine
    distance to its nearest forget sample in the original's penultimate features."""

    ids: np.ndarray
    distance: np.ndarray


def neighbourhood(data: RunData, max_samples: int = MAX_REFERENCE) -> Neighbourhood:
    """`Neighbourhood` of a run: one embedding pass of the original over D_f and the sample."""
    reference = np.concatenate([data.split["retain"], data.split["test"]])
    ids = np.sort(seeded_sample(reference, max_samples, data.rng(0x6A9)))
    original = data.models["original"]
    f = torch.as_tensor(embed(original, data.x, data.split["forget"], device=data.device))
    r = torch.as_tensor(embed(original, data.x, ids, device=data.device))
    f, r = torch.nn.functional.normalize(f, dim=1), torch.nn.functional.normalize(r, dim=1)
    nearest = torch.cat([(c @ f.T).amax(1) for c in r.split(1024)]) if len(ids) else r[:, 0]
    return Neighbourhood(ids, (1 - nearest).clamp(min=0).numpy().astype(np.float32))


@dataclass(frozen=True)
class GapBins:
    """Per bin of samples (`labels`, `counts`): each model's agreement with the gold ensemble and
    its accuracy minus the ensemble's (`delta`, signed: below 0, the model gets fewer right)."""

    by: str
    labels: list[str]
    counts: np.ndarray
    agreement: dict[str, np.ndarray]
    delta: dict[str, np.ndarray]


def _bins(predictions, split, labels, ids, groups, names, models, by) -> GapBins:
    y = labels[ids]
    gold = probs_at(predictions, split, GOLD_ENSEMBLE, ids).argmax(1)
    counts = np.bincount(groups, minlength=len(names))
    masks = [groups == b for b in range(len(names))]

    def per_bin(values: np.ndarray) -> np.ndarray:
        return np.array([values[m].mean() if m.any() else np.nan for m in masks])

    agreement, delta = {}, {}
    for m in models:
        pred = probs_at(predictions, split, m, ids).argmax(1)
        agreement[m] = per_bin((pred == gold).astype(float))
        delta[m] = per_bin((pred == y).astype(float) - (gold == y))
    return GapBins(by, names, counts, agreement, delta)


def memorisation(predictions, split, labels) -> np.ndarray:
    """Per forget sample: the original's probability of its training label minus the gold
    ensemble's."""
    ids = split["forget"]
    y = labels[ids]
    rows = np.arange(len(ids))
    orig = probs_at(predictions, split, "original", ids)[rows, y]
    gold = probs_at(predictions, split, GOLD_ENSEMBLE, ids)[rows, y]
    return orig - gold


def by_memorisation(predictions, split, labels, models) -> GapBins:
    """`GapBins` of D_f by memorisation (MEMORISATION_EDGES)."""
    mem = memorisation(predictions, split, labels)
    edges = np.asarray(MEMORISATION_EDGES)
    groups = np.clip(np.searchsorted(edges, mem, side="right") - 1, 0, len(edges) - 2)
    names = [f"{a:+.1f} to {b:+.1f}" for a, b in zip(edges[:-1], edges[1:])]
    return _bins(predictions, split, labels, split["forget"], groups, names, models, "memorisation")


def by_distance(predictions, split, labels, near: Neighbourhood, models) -> GapBins:
    """`GapBins` of the retained and test samples of `near` by distance to D_f, in quartiles
    (nearest first)."""
    cuts = np.quantile(near.distance, np.linspace(0, 1, DISTANCE_BINS + 1)[1:-1])
    groups = np.searchsorted(cuts, near.distance, side="right")
    names = ["nearest quarter", "second quarter", "third quarter", "farthest quarter"]
    return _bins(predictions, split, labels, near.ids, groups, names, models, "distance to D_f")


def membership_gaps(report: dict) -> dict[str, float]:
    """Each model's member rate on D_f minus the golds' mean (signed: below 0 over-forgets)."""
    golds = [g["mia"]["forget_member_rate"] for g in report["models"]["gold"]]
    mean = float(np.mean(golds))
    names = ["original", *report["methods"]]
    return {m: report["models"][m]["mia"]["forget_member_rate"] - mean for m in names}
