"""Where TMU sends a flipped forget sample: its flip label, one policy each (`hard_label`).

A gold model that gets a forget sample wrong predicts some other class, and a flip agrees with
gold only when it lands there. Each policy guesses that class without the gold model:

* `runner_up` — the model's most probable class other than the given label (a gold model that
  is wrong tends to pick the confusable class);
* `neighbours` — the class most common among the sample's nearest retained samples in the
  model's penultimate embedding (cosine similarity, similarity-weighted votes of the
  `NEIGHBOURS` nearest, the given label left out). A memorised wrong label lives in the last
  layers; the features often still sit with the true class, which is what gold predicts;
* `random` — uniform over the other classes (the paper's choice).

The twin chooses between `CHOSEN_BY_TWIN`: the policy whose labels most often are the twin
gold's own wrong class on the twin's hard samples (`tmu.twin.choose_flip_policy`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ..forget import random_wrong_labels
from ..training import embed, predict
from .base import Env, Problem

NEIGHBOURS = 10
"""Retained neighbours that vote on a flip label."""
CHUNK = 256  # forget rows per similarity block: bounded memory on a large retain set


def runner_up_labels(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The most probable class other than the true one, per row of `probs` (n, K)."""
    masked = probs.copy()
    masked[np.arange(len(labels)), labels] = -np.inf
    return masked.argmax(1)


def runner_up(model: nn.Module, problem: Problem, env: Env) -> np.ndarray:
    probs = predict(model, problem.x, problem.forget, device=env.device)
    return runner_up_labels(probs, problem.labels[problem.forget])


def neighbour_labels(
    forget_emb: np.ndarray,
    retain_emb: np.ndarray,
    retain_labels: np.ndarray,
    given: np.ndarray,
    num_classes: int,
    k: int = NEIGHBOURS,
) -> np.ndarray | None:
    """Per forget row, the class of most similarity-weighted votes among its `k` most similar
    retained rows (cosine), the given label left out; -1 where no neighbour has another label.
    Embeddings (n, d) and (m, d); labels (m,) and (n,)."""
    f = torch.nn.functional.normalize(torch.as_tensor(forget_emb, dtype=torch.float32), dim=1)
    r = torch.nn.functional.normalize(torch.as_tensor(retain_emb, dtype=torch.float32), dim=1)
    y, k = torch.as_tensor(retain_labels, dtype=torch.long), min(k, len(retain_labels))
    out = np.full(len(f), -1, dtype=np.int64)
    for s in range(0, len(f), CHUNK):
        sim, idx = (f[s : s + CHUNK] @ r.T).topk(k, dim=1)
        votes = torch.zeros(len(idx), num_classes).scatter_add_(1, y[idx], sim.clamp(min=0) + 1e-6)
        votes[torch.arange(len(idx)), torch.as_tensor(given[s : s + CHUNK])] = 0
        best = votes.argmax(1)
        out[s : s + CHUNK] = torch.where(votes.amax(1) > 0, best, -1).numpy()
    return out


def neighbours(model: nn.Module, problem: Problem, env: Env) -> np.ndarray:
    given = problem.labels[problem.forget]
    votes = neighbour_labels(
        embed(model, problem.x, problem.forget, device=env.device),
        embed(model, problem.x, problem.retain, device=env.device),
        problem.labels[problem.retain],
        given,
        problem.num_classes,
    )
    return np.where(votes >= 0, votes, runner_up(model, problem, env))


def random(model: nn.Module, problem: Problem, env: Env) -> np.ndarray:
    truth = problem.labels[problem.forget]
    return random_wrong_labels(truth, problem.num_classes, np.random.default_rng([env.seed, 0x7A]))


FLIP_LABELS: dict[str, Callable[[nn.Module, Problem, Env], np.ndarray]] = {
    "runner_up": runner_up,
    "neighbours": neighbours,
    "random": random,
}
"""Flip-label policies: (model, problem, env) -> a label per forget sample."""
CHOSEN_BY_TWIN = ("runner_up", "neighbours")
"""The policies the twin chooses between (ties: the first)."""
