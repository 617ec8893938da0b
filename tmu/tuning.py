"""Twin-tuning (method spec §6): choose any method's hyper-parameters on the twin problem, whose
gold model (M_o) is known for free. The real gold model is never read here."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
from torch import nn

from .evaluate import accuracy, agreement
from .training import predict
from .unlearn import METHODS, Env, Problem, get_method

logger = logging.getLogger(__name__)

RETAIN_CHECK = 1000  # retain samples on which each trial's accuracy loss is measured


def grid_points(grid: dict[str, list] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points of a search space: an explicit list as given, or every combination of a dict
    of value lists in a stable order ([{}] for an empty dict)."""
    if isinstance(grid, list):
        return [dict(p) for p in grid]
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def free_points(
    grid: dict[str, list] | list[dict[str, Any]], fixed: dict[str, Any]
) -> list[dict[str, Any]]:
    """The grid's points with the user's `fixed` keys taken out (a value the user gives always
    wins over a tuned one), duplicates dropped, in grid order ([{}] when nothing is left)."""
    out: list[dict[str, Any]] = []
    for point in grid_points(grid):
        free = {k: v for k, v in point.items() if k not in fixed}
        if free not in out:
            out.append(free)
    return out or [{}]


def is_inert(params: dict[str, Any], inert: dict[str, Any]) -> bool:
    """Whether `params` switch the method off (every key of its `inert` point set so)."""
    return bool(inert) and all(params.get(k) == v for k, v in inert.items())


def choose_trial(trials: list[dict], inert: dict[str, Any], tolerance: float) -> dict:
    """The best trial: the lowest score, where scores within `tolerance` of it tie. A tie never
    goes to an inert point (a method switched off, such as TMU flipping nothing) while a point
    that acts ties with it: "do nothing" must win on the twin, not by coming first in the grid.
    Among the rest the grid's order decides."""
    low = min(t["score"] for t in trials)
    tied = [t for t in trials if t["score"] <= low + tolerance]
    acting = [t for t in tied if not is_inert(t["params"], inert)]
    return (acting or tied)[0]


def twin_score(
    probs_u: np.ndarray, probs_gold: np.ndarray, y: np.ndarray, retain_drop: float
) -> float:
    """Lower is better: |Δ_f| + (1 - agreement) with the twin gold on H_f, plus any accuracy lost
    on the twin's retain set D."""
    delta = abs(accuracy(probs_u, y) - accuracy(probs_gold, y))
    return delta + (1.0 - agreement(probs_u, probs_gold)) + max(0.0, retain_drop)


def twin_tune(
    name: str,
    base: dict[str, Any],
    grid: dict[str, list] | list[dict],
    twin_model: nn.Module,
    problem: Problem,
    gold_probs: np.ndarray,
    env: Env,
) -> tuple[dict[str, Any], list[dict]]:
    """Run method `name` from M_t on the twin problem for each grid point; return the best
    hyper-parameters and one row per trial (params, delta, agreement, score). `base` holds the
    user's own values: they always win, so the grid only varies the other keys."""
    y_f = problem.labels[problem.forget]
    rng = np.random.default_rng([env.seed, 0x70])
    check = np.sort(
        rng.choice(problem.retain, size=min(len(problem.retain), RETAIN_CHECK), replace=False)
    )
    ref_retain = accuracy(
        predict(twin_model, problem.x, check, device=env.device), problem.labels[check]
    )
    trials = []
    for point in free_points(grid, base):
        params = {**point, **base}
        model = get_method(name, **params).unlearn(twin_model, problem, env)
        probs = predict(model, problem.x, problem.forget, device=env.device)
        retain_acc = accuracy(
            predict(model, problem.x, check, device=env.device), problem.labels[check]
        )
        trials.append(
            {
                "params": params,
                "delta_forget": abs(accuracy(probs, y_f) - accuracy(gold_probs, y_f)),
                "agreement_forget": agreement(probs, gold_probs),
                "retain_acc": retain_acc,
                "score": twin_score(probs, gold_probs, y_f, ref_retain - retain_acc),
            }
        )
        logger.info("twin-tune %s %s: score %.4f", name, point, trials[-1]["score"])
    best = choose_trial(trials, METHODS[name].inert, tie_tolerance(len(problem.forget)))
    return best["params"], trials


def tie_tolerance(n_twin: int) -> float:
    """Scores closer than half a twin sample (on |Δ_f| or agreement, over `n_twin`) tie."""
    return 0.5 / max(n_twin, 1)
