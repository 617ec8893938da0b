"""The interface every unlearning method shares: (original model, problem, env) -> unlearned model.

A method is a class whose `__init__` only stores hyper-parameters (unknown names are errors) and
whose `unlearn` returns a new model, never mutating the original. `grid` is its twin-tuning search
space (method spec §6): small, and chosen on the twin problem only; either a dict of value lists
(every combination is tried) or an explicit list of points.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig
from ..forget import random_wrong_labels  # noqa: F401  (re-exported: methods draw wrong labels)
from ..training import Loss, Part, Progress, fit, predict, weighted_cross_entropy
from ..models import clone_model


@dataclass(frozen=True)
class Problem:
    """One unlearning request over a pool: forget these ids, keep these.

    easy: for methods that use the generalization-label predictor (TMU), the predicted-easy mask
    over `forget`; None otherwise.
    flip_labels: for such a method, the label each forget sample gets when it is flipped, instead
    of the method's own choice (None).
    flip_policy: the flip-label policy the twin problem chose (`tmu.unlearn.flips`), for a method
    told to use it.
    target_forget_acc: when set, the method stops training once its accuracy on `forget` is at or
    below it (the twin's estimate of gold's forget accuracy: a NAME+stop entry).
    """

    x: torch.Tensor
    labels: np.ndarray
    retain: np.ndarray
    forget: np.ndarray
    num_classes: int
    easy: np.ndarray | None = None
    target_forget_acc: float | None = None
    flip_labels: np.ndarray | None = None  # per forget sample, the label a flip gives it (a
    # benchmark control's, e.g. gold's own class); None: the method's own choice
    flip_policy: str | None = None  # the flip-label policy the twin chose (tmu.unlearn.flips)


@dataclass(frozen=True)
class Env:
    """Where and how to run: device, seed, a factory for a fresh network, a progress callback."""

    device: torch.device
    seed: int
    build: Callable[[], nn.Module]
    progress: Progress | None = None


def stage_env(env: Env, k: int, n: int) -> Env:
    """`env` whose progress reports stage k of n equal stages (for a method that trains n times)."""
    if env.progress is None:
        return env
    return replace(env, progress=lambda frac: env.progress((k + frac) / n))


class ForgetTarget:
    """The stop test of a method stopped at the twin's estimate of gold's forget accuracy:
    called with the model, True once acc(model, D_f) <= the target (and from then on)."""

    def __init__(self, problem: Problem, env: Env):
        self.problem, self.env, self.reached = problem, env, False
        self.y = problem.labels[problem.forget]

    def __call__(self, model: nn.Module) -> bool:
        probs = predict(model, self.problem.x, self.problem.forget, device=self.env.device)
        acc = float((probs.argmax(1) == self.y).mean())
        self.reached = self.reached or acc <= float(self.problem.target_forget_acc)
        return self.reached


def forget_target(problem: Problem, env: Env) -> ForgetTarget | None:
    """A ForgetTarget when the problem carries a target, else None."""
    return None if problem.target_forget_acc is None else ForgetTarget(problem, env)


def _check_type(method: str, key: str, value: Any, default: Any) -> None:
    """A hyper-parameter must have its default's type (an int may stand for a float)."""
    expected, is_bool = type(default), isinstance(value, bool)
    ok = (isinstance(value, expected) and (expected is bool or not is_bool)) or (
        expected is float and isinstance(value, int) and not is_bool
    )
    if not ok:
        raise ValueError(
            f"method_params.{method}.{key}={value!r}: expected {expected.__name__} "
            f"(default {default!r})"
        )


class Method:
    """Base class: subclasses set `name`, `description`, `defaults`, `grid`, and `_unlearn`."""

    name: ClassVar[str]
    description: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    grid: ClassVar[dict[str, list] | list[dict[str, Any]]] = {}
    # The grid point (if any) at which the method does nothing to the forget set: twin-tuning
    # picks it only when it scores better than every point that acts, never by a tie.
    inert: ClassVar[dict[str, Any]] = {}
    needs_predictor: ClassVar[bool] = False
    tuned_by_default: ClassVar[bool] = False  # its main entry uses twin-tuned hyper-parameters

    def __init__(self, **params: Any):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"unknown hyper-parameter(s) {unknown} for method {self.name!r}; "
                f"valid: {sorted(self.defaults)}"
            )
        for key, value in params.items():
            _check_type(self.name, key, value, self.defaults[key])
        # An int given for a float default becomes a float: 1 and 1.0 are one setting (and one
        # cache key).
        self.params = {
            **self.defaults,
            **{k: float(v) if type(self.defaults[k]) is float else v for k, v in params.items()},
        }

    def unlearn(self, original: nn.Module, problem: Problem, env: Env) -> nn.Module:
        """A new model unlearned from `original` (left untouched)."""
        if self.needs_predictor and problem.easy is None:
            raise ValueError(f"method {self.name!r} needs the predicted easy mask (problem.easy)")
        return self._unlearn(original, problem, env)

    def _unlearn(self, original: nn.Module, problem: Problem, env: Env) -> nn.Module:
        raise NotImplementedError

    def flips(
        self, original: nn.Module, problem: Problem, env: Env
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """For a method that relabels chosen forget samples (TMU): (mask over `problem.forget` of
        the samples it trains towards another label, that label per forget sample). None for a
        method that flips no chosen sample."""
        return None

    def _recipe(self, batch_size: int = 64) -> TrainConfig:
        """The method's fine-tuning recipe: its epochs, lr and batch size, constant lr, SGD with
        momentum 0.9 and weight decay 5e-4."""
        return TrainConfig(
            epochs=int(self.params["epochs"]),
            lr=float(self.params["lr"]),
            batch_size=int(self.params.get("batch_size", batch_size)),
            schedule="constant",
        )

    def _finetune(
        self,
        original: nn.Module,
        problem: Problem,
        parts: list[Part],
        env: Env,
        loss: Loss = weighted_cross_entropy,
        **options: Any,
    ) -> nn.Module:
        """Fine-tune a copy of `original` on `parts` with `loss` and the method's recipe.
        `options` go to `tmu.training.fit` (salt, opt, mask, clip); a problem with a target
        stops at it unless `options` give their own `stop`."""
        options.setdefault("stop", forget_target(problem, env))
        return fit(
            clone_model(original),
            problem.x,
            parts,
            self._recipe(),
            device=env.device,
            seed=env.seed,
            loss=loss,
            progress=env.progress,
            **options,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"
