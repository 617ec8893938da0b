"""The generalization-label predictor (method spec §5): scaled features -> p(easy).

Predictors follow scikit-learn's habits: `__init__` stores parameters, `fit(X, g)` returns self,
learned state ends in `_`, `predict_proba_easy` on an unfitted predictor raises.
Hard samples (g = 0) are rare, so both predictors weight the classes by inverse frequency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn


class MLPPredictor:
    """MLP d -> 32 -> 16 -> 1 with a class-weighted logistic loss, full-batch Adam."""

    def __init__(self, epochs: int = 300, lr: float = 0.01, seed: int = 0):
        self.epochs, self.lr, self.seed = epochs, lr, seed

    def fit(self, X: np.ndarray, g: np.ndarray) -> "MLPPredictor":
        torch.manual_seed(self.seed)
        X_t, g_t = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(g, dtype=torch.float32)
        self.net_ = nn.Sequential(
            nn.Linear(X_t.shape[1], 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1)
        )
        n_easy, n_hard = float(g_t.sum()), float(len(g_t) - g_t.sum())
        # Class weighting: weight the easy class by n_hard/n_easy, so both classes count equally.
        pos_weight = torch.tensor([n_hard / n_easy if n_easy and n_hard else 1.0])
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        for _ in range(self.epochs):
            opt.zero_grad()
            loss_fn(self.net_(X_t).squeeze(1), g_t).backward()
            opt.step()
        return self

    def predict_proba_easy(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "net_"):
            raise RuntimeError("MLPPredictor is not fitted; call fit() first")
        with torch.no_grad():
            logits = self.net_(torch.as_tensor(X, dtype=torch.float32)).squeeze(1)
        return torch.sigmoid(logits).numpy().astype(np.float64)


class LogisticPredictor:
    """scikit-learn's class-balanced logistic regression."""

    def __init__(self, seed: int = 0, **_: object):
        self.seed = seed

    def fit(self, X: np.ndarray, g: np.ndarray) -> "LogisticPredictor":
        from sklearn.linear_model import LogisticRegression  # imported when used: a slow import

        self.model_ = LogisticRegression(class_weight="balanced", random_state=self.seed)
        self.__dict__.pop("constant_", None)  # a refit must not keep an earlier one-class fit
        if len(np.unique(g)) < 2:
            self.constant_ = float(g[0]) if len(g) else 1.0
        else:
            self.model_.fit(X, g)
        return self

    def predict_proba_easy(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise RuntimeError("LogisticPredictor is not fitted; call fit() first")
        if hasattr(self, "constant_"):
            return np.full(len(X), self.constant_)
        return self.model_.predict_proba(X)[:, list(self.model_.classes_).index(1)]


PREDICTORS = {"mlp": MLPPredictor, "logistic": LogisticPredictor}


def make_predictor(kind: str, **params):
    """A predictor from the registry; unknown kinds are a ValueError listing the valid ones."""
    if kind not in PREDICTORS:
        raise ValueError(f"unknown predictor {kind!r}; valid predictors: {sorted(PREDICTORS)}")
    return PREDICTORS[kind](**params)


@dataclass(frozen=True)
class DecisionRule:
    """How p(easy) becomes the easy / hard decision: `decide(p_easy, easy_rate, threshold)` gives
    the boolean easy mask, from the twin's easy rate and, for a rule with `fitted_threshold`, the
    twin-fitted `gain_threshold` (computed only when such a rule is used)."""

    name: str
    decide: Callable[[np.ndarray, float, float], np.ndarray]
    fitted_threshold: bool = False
    summary: str = ""


def _rate_matched(p_easy: np.ndarray, easy_rate: float, threshold: float) -> np.ndarray:
    n_easy = int(round(float(np.clip(easy_rate, 0.0, 1.0)) * len(p_easy)))
    mask = np.zeros(len(p_easy), dtype=bool)
    mask[np.argsort(-p_easy, kind="stable")[:n_easy]] = True
    return mask


DECISION_RULES: dict[str, DecisionRule] = {}


def register_rule(rule: DecisionRule) -> DecisionRule:
    """Add a decision rule (then valid in `predictor.rule` and `predictor.compare_rules`)."""
    DECISION_RULES[rule.name] = rule
    return rule


register_rule(
    DecisionRule(
        "rate",
        _rate_matched,
        summary="the top round(easy_rate * n) samples by p(easy) are easy (ties by position)",
    )
)
register_rule(
    DecisionRule("threshold", lambda p, rate, t: p >= 0.5, summary="p(easy) >= 0.5 is easy")
)
register_rule(
    DecisionRule(
        "gain",
        lambda p, rate, t: p >= t,
        fitted_threshold=True,
        summary="p(easy) >= the twin-fitted point where flipping starts to gain agreement",
    )
)
RULES = tuple(DECISION_RULES)  # the built-in rules, in registry order
TWIN = "twin"  # predictor.rule: the rule of TWIN_CHOICES that scores better on the twin
TWIN_CHOICES = ("rate", "gain")  # the rules `twin` chooses between


def decide_easy(
    p_easy: np.ndarray, rule: str, easy_rate: float, threshold: float = 0.5
) -> np.ndarray:
    """Boolean easy mask of decision rule `rule` (a key of DECISION_RULES): `rate`, the top
    round(easy_rate * n) samples by p(easy); `threshold`, p(easy) >= 0.5; `gain`, p(easy) >=
    `threshold`, the twin-fitted point where flipping starts to gain agreement
    (`gain_threshold`)."""
    if rule not in DECISION_RULES:
        raise ValueError(f"unknown decision rule {rule!r}; valid rules: {list(DECISION_RULES)}")
    return DECISION_RULES[rule].decide(p_easy, easy_rate, threshold)


ABOVE_ALL = float(np.nextafter(1.0, 2.0))
"""A threshold above every probability: every sample is hard."""


def gain_threshold(oof_easy: np.ndarray, g: np.ndarray, flip_match: float) -> float:
    """The raw p(easy) below which flipping a sample is expected to raise agreement with gold.

    Flipping x gains an agreement when gold gets x wrong *and* the flipped label is gold's
    (probability p_hard * flip_match) and loses one when gold gets x right (1 - p_hard); so flip
    iff calibrated p_hard > 1 / (1 + flip_match). p_hard is calibrated by Platt scaling of the
    twin's out-of-fold p(easy) against its labels g; the threshold is mapped back to raw p(easy)
    (the scaling is monotone). A predictor that does not rank (slope <= 0) knows only the twin's
    base rate: it flips every sample when that rate alone passes the break-even point, else
    none. A twin with one label only decides by it: every sample hard gives a threshold above
    every p(easy) (flip all, as long as flips can land on gold's class), every sample easy gives
    0 (flip nothing)."""
    if flip_match <= 0 or (g == 1).all():
        return 0.0
    if (g == 0).all():
        return ABOVE_ALL
    from sklearn.linear_model import LogisticRegression  # imported when used: a slow import

    eps = 1e-6
    z = np.log(np.clip(oof_easy, eps, 1 - eps) / np.clip(1 - oof_easy, eps, 1 - eps))
    platt = LogisticRegression(C=1e4).fit(z[:, None], g)
    a, b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    p_easy_cal = 1.0 - 1.0 / (1.0 + flip_match)  # calibrated p(easy) at the break-even point
    if a <= 0:  # no ranking: every sample is as likely hard as the twin's base rate says
        return ABOVE_ALL if float(np.mean(g)) < p_easy_cal else 0.0
    z_cal = np.log(p_easy_cal / (1 - p_easy_cal))
    return float(1.0 / (1.0 + np.exp(-(z_cal - b) / a)))


def out_of_fold_proba(
    kind: str, X: np.ndarray, g: np.ndarray, folds: int, seed: int, **params
) -> np.ndarray:
    """p(easy) for every row of X from predictors that never saw that row (stratified k-fold).
    With too few hard samples for k folds, the folds shrink to the number of hard samples (>= 2);
    with fewer than 2 hard samples, every row gets the in-sample prediction."""
    n_min = int(min(g.sum(), len(g) - g.sum()))
    k = min(folds, n_min)
    if k < 2:
        return make_predictor(kind, seed=seed, **params).fit(X, g).predict_proba_easy(X)
    out = np.empty(len(g))
    from sklearn.model_selection import StratifiedKFold  # imported when used: a slow import

    for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(X, g):
        out[test] = (
            make_predictor(kind, seed=seed, **params)
            .fit(X[train], g[train])
            .predict_proba_easy(X[test])
        )
    return out
