"""The twin problem (method spec §3): an unlearning problem whose gold model is known for free.

H_f ⊆ H is distributed like D_f (each forget-spec kind draws its own: `tmu.forget`); the twin model
M_t is M_o fine-tuned on D ∪ H_f until H_f are
members of M_t the way D are members of M_o; the twin gold is M_o itself (it never saw H_f), so
the twin generalization label of x ∈ H_f is g(x) = 1 iff M_o classifies x correctly.
These are pure stage functions; `pipeline.py` wires and caches them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from .config import PredictorConfig, TrainConfig, TwinConfig
from .features import IQRScaler
from .models import clone_model
from .predictor import (
    DECISION_RULES,
    TWIN,
    TWIN_CHOICES,
    decide_easy,
    gain_threshold,
    make_predictor,
    out_of_fold_proba,
)
from .training import Part, Progress, fit, predict, train_from_scratch

logger = logging.getLogger(__name__)


def accuracy_on(
    model: nn.Module, x: torch.Tensor, labels: np.ndarray, ids: np.ndarray, device: torch.device
) -> float:
    return float((predict(model, x, ids, device=device).argmax(1) == labels[ids]).mean())


RETRAIN_SEED = 7_919
"""Added to the run's seed for a retrained twin: a network of its own, as each gold model is."""


@dataclass(frozen=True)
class TwinFit:
    """How the twin model M_t was made, and its fit on H_f beside the original's fit it mirrors.

    mode: "finetune" (M_o fine-tuned on H_f until it fits it) or "retrain" (a fresh network
    trained on D ∪ H_f with the original's own recipe: M_o is then to M_t exactly what a
    retrained gold model is to M_o). epochs: the epochs it took. twin: acc(M_t, H_f) on the
    twin's labels; target: the original's fit on the D samples that H_f mirrors (all of D, or
    D_f for a mislabeled request: `ForgetSpec.mirrored`)."""

    mode: str
    epochs: int
    twin: float
    target: float


def finetune_twin(
    original: nn.Module,
    x: torch.Tensor,
    labels: np.ndarray,
    train: np.ndarray,
    twin_forget: np.ndarray,
    target_acc: float,
    cfg: TwinConfig,
    recipe: TrainConfig,
    *,
    device: torch.device,
    seed: int,
    progress: Progress | None = None,
) -> tuple[nn.Module, int, float]:
    """M_o fine-tuned one epoch at a time on H_f plus a fresh subset of D (retain_per_forget x
    |H_f| samples), with the recipe's weight decay and label smoothing, until acc(M_t, H_f) >=
    target_acc - fit_margin or max_epochs. Returns (model, epochs, acc(M_t, H_f))."""
    model = clone_model(original)
    parts = [
        Part(twin_forget, labels[twin_forget]),
        Part(
            train,
            labels[train],
            per_epoch=min(len(train), int(cfg.retain_per_forget * len(twin_forget))),
        ),
    ]
    step_cfg = TrainConfig(
        epochs=1,
        lr=cfg.lr,
        schedule="constant",
        weight_decay=recipe.weight_decay,
        label_smoothing=recipe.label_smoothing,
    )
    for epoch in range(cfg.max_epochs):
        fit(model, x, parts, step_cfg, device=device, seed=seed + epoch)
        acc = accuracy_on(model, x, labels, twin_forget, device)
        if progress is not None:
            progress((epoch + 1) / cfg.max_epochs)
        if acc >= target_acc - cfg.fit_margin:
            break
    return model, epoch + 1, acc


def train_twin_model(
    original: nn.Module,
    build: Callable[[int], nn.Module],
    x: torch.Tensor,
    labels: np.ndarray,
    train: np.ndarray,
    twin_forget: np.ndarray,
    target_acc: float,
    cfg: TwinConfig,
    recipe: TrainConfig,
    *,
    device: torch.device,
    seed: int,
    progress: Progress | None = None,
) -> tuple[nn.Module, TwinFit]:
    """M_t, made so that H_f are members of M_t the way D are members of M_o (`cfg.mirror`):

    * "finetune": `finetune_twin` (cheap: a few epochs on H_f and as many D samples);
    * "retrain": a fresh network (`build(seed)`) trained from scratch on D ∪ H_f with the
      original's `recipe`, the exact mirror, at the cost of one more training;
    * "auto": fine-tune, and retrain when fine-tuning cannot reach the original's fit. A model
      that memorised wrong labels over many epochs holds them in a way a short fine-tune does
      not: a fine-tuned twin that never fits its mislabeled H_f, or fits it only on the surface,
      tells twin-tuning that unlearning has nothing to undo."""
    report = progress or (lambda f: None)
    if cfg.mirror in ("auto", "finetune"):
        share = 1.0 if cfg.mirror == "finetune" else 0.3
        model, epochs, acc = finetune_twin(
            original,
            x,
            labels,
            train,
            twin_forget,
            target_acc,
            cfg,
            recipe,
            device=device,
            seed=seed,
            progress=lambda f: report(share * f),
        )
        fitted = acc >= target_acc - cfg.fit_margin
        logger.info(
            "fine-tuned twin fits H_f at %.3f after %d epoch(s) (target %.3f)",
            acc,
            epochs,
            target_acc,
        )
        if cfg.mirror == "finetune" or fitted:
            return model, TwinFit("finetune", epochs, acc, target_acc)
        logger.info("the fine-tuned twin falls short of the original's fit: retraining it")
    ids, seed = np.union1d(train, twin_forget), seed + RETRAIN_SEED
    model = train_from_scratch(
        lambda: build(seed),
        x,
        labels,
        ids,
        recipe,
        device=device,
        seed=seed,
        progress=lambda f: report(0.3 + 0.7 * f if cfg.mirror == "auto" else f),
    )
    acc = accuracy_on(model, x, labels, twin_forget, device)
    logger.info("retrained twin fits H_f at %.3f (target %.3f)", acc, target_acc)
    return model, TwinFit("retrain", recipe.epochs, acc, target_acc)


def train_curriculum(
    build,
    x: torch.Tensor,
    labels: np.ndarray,
    ids: np.ndarray,
    cfg: TwinConfig,
    *,
    device: torch.device,
    seed: int,
    progress: Progress | None = None,
) -> nn.Module:
    """M_c: a fresh network trained briefly (cfg.curriculum_epochs) from scratch on `ids` (D ∪
    H_f)."""
    tcfg = TrainConfig(epochs=cfg.curriculum_epochs, lr=cfg.curriculum_lr, schedule="constant")
    return train_from_scratch(
        build, x, labels, ids, tcfg, device=device, seed=seed, progress=progress
    )


@dataclass(frozen=True)
class FittedPredictor:
    """The scaler and predictor fitted on the twin set, with the twin's own out-of-fold
    decisions."""

    scaler: IQRScaler
    predictor: object
    easy_rate: float  # acc(M_o, H_f): the expected gold accuracy on the forget set
    rule: str
    oof_proba: np.ndarray  # p(easy) on H_f from predictors that never saw the sample
    oof_easy: np.ndarray  # the decision rule applied to oof_proba
    threshold: float = 0.5  # the `gain` rule's p(easy) threshold, fitted on the twin
    flip_match: float = 1.0  # the twin's flip-match rate q that set the threshold
    flip_label: str = "runner_up"  # the flip-label policy the twin chose
    flip_matches: dict[str, float] = field(default_factory=dict)  # each policy's rate
    # rule -> its oof easy mask: every rule the run decides by (`rule`, or rate and gain when it
    # is "twin", which `choose` then fixes, and `predictor.compare_rules`)
    candidates: dict[str, np.ndarray] = field(default_factory=dict)

    def choose(self, rule: str) -> FittedPredictor:
        """This predictor deciding by `rule`, one of its candidates."""
        return replace(self, rule=rule, oof_easy=self.candidates[rule])

    def rules(self, rule: str | None) -> dict[str, np.ndarray]:
        """The candidate masks an entry deciding by `rule` is twin-tuned with: both of "twin"'s
        choices while `rule` is still "twin", else `rule`'s own (None: this predictor's)."""
        rule = rule or self.rule
        if rule == TWIN:
            return {r: self.candidates[r] for r in TWIN_CHOICES}
        return {rule: self.candidates[rule]}

    def decide(self, proba: np.ndarray, rule: str | None = None) -> np.ndarray:
        """The easy mask of `rule` (default: this predictor's) for p(easy) `proba`."""
        return decide_easy(proba, rule or self.rule, self.easy_rate, self.threshold)

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p(easy), easy mask) for raw features of the real forget set."""
        proba = self.predictor.predict_proba_easy(self.scaler.transform(features))
        return proba, self.decide(proba)


def flip_match(flip: np.ndarray, gold_probs: np.ndarray, labels: np.ndarray) -> float:
    """On the samples the (twin) gold gets wrong, how often the flip label `flip` is gold's own
    wrong class; 0 if gold gets every sample right. flip, labels: (n,); gold_probs: (n, K)."""
    hard = gold_probs.argmax(1) != labels
    return float((flip[hard] == gold_probs[hard].argmax(1)).mean()) if hard.any() else 0.0


def flip_match_rate(twin_probs: np.ndarray, gold_probs: np.ndarray, labels: np.ndarray) -> float:
    """`flip_match` of the runner-up class of the twin model M_t (`twin_probs`)."""
    from .unlearn.flips import runner_up_labels

    return flip_match(runner_up_labels(twin_probs, labels), gold_probs, labels)


def choose_flip_policy(
    twin_model: nn.Module,
    problem,
    gold_probs: np.ndarray,
    env,
    policies: tuple[str, ...] | None = None,
) -> tuple[str, dict[str, float]]:
    """The flip-label policy (`tmu.unlearn.flips`) whose labels for the twin forget set, under
    the twin model, land most often on the twin gold's (M_o's) own wrong class, and each
    policy's rate (`flip_match`). `problem` is the twin problem (retain D, forget H_f);
    `policies` defaults to CHOSEN_BY_TWIN; ties go to the first."""
    from .unlearn.flips import CHOSEN_BY_TWIN, FLIP_LABELS

    labels = problem.labels[problem.forget]
    matches = {
        name: flip_match(FLIP_LABELS[name](twin_model, problem, env), gold_probs, labels)
        for name in policies or CHOSEN_BY_TWIN
    }
    return max(matches, key=lambda name: matches[name]), matches


def fit_predictor(
    features: np.ndarray,
    g: np.ndarray,
    cfg: PredictorConfig,
    seed: int,
    flip_match: float = 1.0,
    flip_label: str = "runner_up",
    flip_matches: dict[str, float] | None = None,
) -> FittedPredictor:
    """Fit scaler + predictor on the twin set (features of H_f under M_t, labels g from M_o).
    `flip_match` (the flip-match rate of the flip-label policy `flip_label`) sets the `gain`
    rule's threshold."""
    scaler = IQRScaler().fit(features)
    X = scaler.transform(features)
    params = {"epochs": cfg.epochs, "lr": cfg.lr}
    predictor = make_predictor(cfg.kind, seed=seed, **params).fit(X, g)
    oof = out_of_fold_proba(cfg.kind, X, g, cfg.folds, seed, **params)
    rate = float(g.mean())
    main = TWIN_CHOICES if cfg.rule == TWIN else (cfg.rule,)
    rules = tuple(dict.fromkeys((*main, *cfg.compare_rules)))
    fitted = any(DECISION_RULES[r].fitted_threshold for r in rules)
    threshold = gain_threshold(oof, g, flip_match) if fitted else 0.5
    masks = {r: decide_easy(oof, r, rate, threshold) for r in rules}
    oof_easy = masks.get(cfg.rule, masks[main[0]])
    return FittedPredictor(
        scaler,
        predictor,
        rate,
        cfg.rule,
        oof,
        oof_easy,
        threshold,
        flip_match,
        flip_label,
        dict(flip_matches or {flip_label: flip_match}),
        masks,
    )


def spread_ratio(points: np.ndarray, labels: np.ndarray, selected: np.ndarray) -> float:
    """How spread out a hand-picked forget set is within its own classes, relative to the whole
    class: for each class of the selection, the mean distance of its selected points to their
    centroid over the same for every point of the class, averaged with the selection's class
    counts as weights. About 1 for a random pick, near 0 for a tight cluster (method spec §3: the
    twin set is drawn at random within D_f's classes, so a clustered D_f is unlike its twin).

    points: (n, d) embeddings of the training set; labels: (n,); selected: (n,) bool mask.
    """
    ratios, weights = [], []
    for c in np.unique(labels[selected]):
        sel, all_c = points[selected & (labels == c)], points[labels == c]
        whole = np.linalg.norm(all_c - all_c.mean(0), axis=1).mean()
        if len(sel) < 2 or whole == 0:
            continue
        ratios.append(np.linalg.norm(sel - sel.mean(0), axis=1).mean() / whole)
        weights.append(len(sel))
    return float(np.average(ratios, weights=weights)) if ratios else float("nan")
