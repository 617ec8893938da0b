"""The value each stage returns: frozen dataclasses that the next stage, the report and the run
folder read by attribute."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..config import RunConfig, TrainConfig
from ..data import Pool
from ..forget import ForgetSpec
from ..models import build_model
from ..splits import Splits
from ..training import Progress, predict, train_from_scratch
from ..twin import FittedPredictor, TwinFit
from ..unlearn import Problem
from .plan import Entry

StageProgress = Callable[[str, float], None]
"""Called with (stage name, fraction of that stage done)."""


@dataclass(frozen=True, eq=False)
class Data:
    """The pool, its inputs on the compute device, the five data roles and the forget spec."""

    pool: Pool
    x: torch.Tensor  # (N, C, H, W) on `device` when small enough, else on the CPU; float32, or
    # uint8 codes of k/255 on a GPU (read it through tmu.training.rows, which decodes)
    labels: np.ndarray  # (N,) int64: the labels models train on and are scored against
    splits: Splits
    forget: ForgetSpec
    device: torch.device
    model: str  # registry name of the architecture
    true_labels: np.ndarray | None = None  # the pool's own labels (`labels` differ under label
    # noise and for a mislabeled request)

    @property
    def relabeled(self) -> bool:
        """True when some training labels differ from the pool's (label noise, `mislabeled:F`)."""
        return self.true_labels is not None and not np.array_equal(self.true_labels, self.labels)

    def build(self, seed: int | None = None) -> nn.Module:
        """A fresh network of the run's architecture (initialised under `seed` when given)."""
        return build_model(self.model, self.pool.in_channels, self.pool.num_classes, seed)

    def scratch(
        self, ids: np.ndarray, recipe: TrainConfig, seed: int, progress: Progress
    ) -> nn.Module:
        """A fresh network trained from scratch on pool ids `ids` with their training labels."""
        return train_from_scratch(
            self.build,
            self.x,
            self.labels,
            ids,
            recipe,
            device=self.device,
            seed=seed,
            progress=progress,
        )

    def predict(self, model: nn.Module, ids: np.ndarray) -> np.ndarray:
        """Softmax of `model` on pool ids `ids`, (len(ids), K)."""
        return predict(model, self.x, ids, device=self.device)

    def problem(
        self,
        easy: np.ndarray | None = None,
        target: float | None = None,
        flip_policy: str | None = None,
    ) -> Problem:
        """The real unlearning request (with the predicted-easy mask and the twin's flip-label
        policy for TMU, and the forget accuracy to stop at for a NAME+stop entry)."""
        s = self.splits
        k = self.pool.num_classes
        return Problem(
            self.x, self.labels, s.retain, s.forget, k, easy, target, flip_policy=flip_policy
        )


@dataclass(frozen=True, eq=False)
class Fitted:
    """A trained model with how long it took and whether it came from the store."""

    model: nn.Module
    seconds: float
    cached: bool
    meta: dict = field(default_factory=dict)  # what the training stored beside the weights


@dataclass(frozen=True, eq=False)
class Trained:
    """The original model M_o and the gold models (retrained on D_r, one per gold seed)."""

    original: Fitted
    golds: tuple[Fitted, ...]

    def models(self) -> dict[str, Fitted]:
        return {"original": self.original, **{f"gold_{k}": g for k, g in enumerate(self.golds)}}


@dataclass(frozen=True)
class Tuning:
    """Hyper-parameters a method chose on the twin problem, every trial, the time it took, and
    for a method that uses the predictor the decision rule it chose (`predictor.rule=twin`)."""

    params: dict
    trials: list
    seconds: float
    rule: str | None = None


@dataclass(frozen=True, eq=False)
class Twin:
    """The twin problem (method spec §3-5): H_f, M_t and how it fits H_f, M_c, H_f's features
    and labels g, the fitted predictor, M_o's embedding of D, the twin-tuned methods, and the
    reusable preparation time (`seconds`, each part measured when it was first computed)."""

    forget: np.ndarray
    model: nn.Module
    fit: TwinFit
    curriculum: nn.Module
    features: np.ndarray
    labels: np.ndarray
    predictor: FittedPredictor
    train_embedding: np.ndarray
    tuning: dict[str, Tuning]
    seconds: float


@dataclass(frozen=True)
class Decisions:
    """The predictor applied to the real forget set D_f: raw features under M_o, p(easy) and the
    easy mask of the run's decision rule, with every other rule's mask (forget samples of a class
    with no retained sample are hard by construction)."""

    features: np.ndarray
    proba: np.ndarray
    easy: np.ndarray
    seconds: float
    rule: str = "gain"
    masks: dict[str, np.ndarray] = field(default_factory=dict)

    def under(self, rule: str | None) -> Decisions:
        """These decisions by `rule` (None or "twin": the run's own, as chosen)."""
        if rule in (None, "twin", self.rule):
            return self
        return replace(self, easy=self.masks[rule], rule=rule)


@dataclass(frozen=True, eq=False)
class Unlearned:
    """One unlearned model with its hyper-parameters, time (the request's, predictor included),
    its twin-tuning, the predictor's decisions where the method uses them, and the forget
    samples it trained towards another label (TMU's flips)."""

    entry: Entry
    model: nn.Module
    params: dict
    seconds: float
    cached: bool
    tuning: Tuning | None = None
    decisions: Decisions | None = None
    flips: tuple[np.ndarray, np.ndarray] | None = None  # `Method.flips`: (mask, label) on D_f


@dataclass(frozen=True, eq=False)
class Result:
    """Every stage's value of one run."""

    cfg: RunConfig
    data: Data
    trained: Trained
    twin: Twin | None
    decisions: Decisions | None
    unlearned: dict[str, Unlearned]

    def models(self) -> dict[str, nn.Module]:
        """Every model by report name: original, gold_K, then each method entry."""
        trained = {k: f.model for k, f in self.trained.models().items()}
        return {**trained, **{k: u.model for k, u in self.unlearned.items()}}
