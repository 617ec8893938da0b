"""The membership-inference view: how member-like D_f still looks to an attacker, for every
model of a run, the gold models included (the target is gold's rate, not zero: gold generalises,
so most of D_f looks like training data to it too).

Three attacks, all read from the softmax outputs a run stores (no model is run):

* the report's loss-threshold attack (`tmu.evaluate.mia`: member iff loss <= tau, tau calibrated
  on D_r against H ∪ T) as a full sweep of thresholds, with the ROC of D_f against T;
* a per-class loss threshold (one tau per class, calibrated the same way within each class);
* offline LiRA (Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P
  2022, §IV "offline" with a global variance): the gold models, which never trained on D_f or T,
  are the OUT reference models. A sample's score is z = (phi_target - mean_ref phi) / sigma, phi
  being the logit-scaled confidence in the true class, sigma the pooled standard deviation of the
  references' phi around their per-sample mean. A gold model is attacked with the OTHER gold seeds
  as references (leave-one-out); with a single gold seed it has no reference model and its LiRA
  is None. With one reference model sigma cannot be pooled, so it is the standard deviation of
  phi_target - phi_ref on T (non-members of both); sigma only scales z, so AUC and the member
  rate at a fixed false-positive rate on T do not depend on it.

D_f is also split as in the TMU paper: easy = the forget samples gold classifies correctly, hard
= those it gets wrong, gold being the gold ensemble (the class of the softmax averaged over the
gold seeds, as on every single-sample view of the dashboard). Easy samples are expected to look
like members (gold generalises to them), hard ones like non-members.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import evaluate as ev
from .source import RunData

SWEEP_ROWS = ("forget", "retain", "test", "forget_easy", "forget_hard")
"""Rows of `LossSweep.member_rate`."""


def roc(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC of scores `pos` (positives) against `neg` (higher = more positive): (fpr, tpr, auc),
    one point per distinct score from (0, 0) to (1, 1); the AUC (trapezoid rule) counts ties as
    half, like sklearn's roc_auc_score. NaN AUC when either side is empty."""
    if not len(pos) or not len(neg):
        return np.zeros(1), np.zeros(1), float("nan")
    cuts = np.unique(np.concatenate([pos, neg]))[::-1]
    tpr = len(pos) - np.searchsorted(np.sort(pos), cuts, side="left")
    fpr = len(neg) - np.searchsorted(np.sort(neg), cuts, side="left")
    tpr, fpr = np.r_[0, tpr] / len(pos), np.r_[0, fpr] / len(neg)
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def logit_confidence(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """phi = log p_y - log(sum_{j != y} p_j) per row (Carlini et al. 2022, §IV-B), float64.
    The other classes' probabilities are summed directly, so a p_y that rounded to 1.0 in float32
    keeps its margin (capped near 103 where they underflow to 0)."""
    p = probs.astype(np.float64)
    own = np.arange(p.shape[1]) == y[:, None]
    mine, rest = p[own], np.where(own, 0.0, p).sum(1)
    return np.log(np.maximum(mine, 1e-45)) - np.log(np.maximum(rest, 1e-45))


def member_rates(loss: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of `loss` at or below each threshold (NaN for an empty set)."""
    if not len(loss):
        return np.full(len(thresholds), np.nan)
    return np.searchsorted(np.sort(loss), thresholds, side="right") / len(loss)


@dataclass(frozen=True)
class LossSweep:
    """The loss-threshold attack at every threshold of an ascending grid (which contains `tau`,
    the report's calibrated threshold): member_rate (len(SWEEP_ROWS), T); the ROC of D_f against
    T with score -loss and its AUC (the report's `auc_forget_vs_test`)."""

    thresholds: np.ndarray
    member_rate: np.ndarray
    tau: float
    roc_fpr: np.ndarray
    roc_tpr: np.ndarray
    auc: float

    def rate(self, row: str, threshold: float | None = None) -> float:
        """Member rate of `row` (one of SWEEP_ROWS) at the grid threshold nearest `threshold`
        (default `tau`)."""
        t = self.tau if threshold is None else threshold
        return float(self.member_rate[SWEEP_ROWS.index(row), np.abs(self.thresholds - t).argmin()])


def loss_sweep(loss: dict[str, np.ndarray], easy: np.ndarray, n_thresholds: int = 200) -> LossSweep:
    """The sweep of per-sample losses `loss` (by data role: forget, retain, holdout, test) over
    `n_thresholds` geometric steps from the smallest positive loss to the largest, plus 0 and the
    report's tau; `easy` (len(loss["forget"]),) splits D_f."""
    tau = ev.loss_threshold(loss["retain"], np.concatenate([loss["holdout"], loss["test"]]))
    every = np.concatenate(list(loss.values()))
    positive = every[every > 0]
    grid = [np.zeros(1), np.array([tau])]
    if len(positive):
        grid.append(np.geomspace(positive.min(), max(positive.max(), positive.min()), n_thresholds))
    thresholds = np.unique(np.concatenate(grid))
    parts = {**loss, "forget_easy": loss["forget"][easy], "forget_hard": loss["forget"][~easy]}
    rates = np.stack([member_rates(parts[k], thresholds) for k in SWEEP_ROWS])
    fpr, tpr, auc = roc(-loss["forget"], -loss["test"])
    return LossSweep(thresholds, rates, tau, fpr, tpr, auc)


@dataclass(frozen=True)
class ClassThreshold:
    """The per-class loss-threshold attack: taus (K,) (the global tau for a class without
    retained or non-member samples); D_f flagged (member iff loss <= tau of its class), and the
    AUC of D_f against T with score tau_y - loss."""

    taus: np.ndarray
    forget_member: np.ndarray
    auc: float


def class_threshold(
    loss: dict[str, np.ndarray], y: dict[str, np.ndarray], num_classes: int, tau: float
) -> ClassThreshold:
    """Calibrate one loss threshold per class on D_r (members) against H ∪ T (non-members)."""
    out_loss = np.concatenate([loss["holdout"], loss["test"]])
    out_y = np.concatenate([y["holdout"], y["test"]])
    taus = np.full(num_classes, tau)
    for c in range(num_classes):
        inside, outside = loss["retain"][y["retain"] == c], out_loss[out_y == c]
        if len(inside) and len(outside):
            taus[c] = ev.loss_threshold(inside, outside)
    score = {k: taus[y[k]] - loss[k] for k in ("forget", "test")}
    _, _, auc = roc(score["forget"], score["test"])
    return ClassThreshold(taus, score["forget"] >= 0, auc)


@dataclass(frozen=True)
class Lira:
    """Offline LiRA against one model (see the module docstring): z scores of D_f and T, the
    global sigma, the threshold flagging at most `alpha` of T (member iff z > threshold), the
    ROC of D_f against T and its AUC; `references` names the OUT models."""

    references: tuple[str, ...]
    forget_score: np.ndarray
    test_score: np.ndarray
    sigma: float
    threshold: float
    roc_fpr: np.ndarray
    roc_tpr: np.ndarray
    auc: float

    @property
    def forget_member(self) -> np.ndarray:
        """(n_f,) bool: the D_f samples flagged as members."""
        return self.forget_score > self.threshold


def lira_offline(
    target: dict[str, np.ndarray],
    refs: dict[str, dict[str, np.ndarray]],
    alpha: float = 0.05,
) -> Lira:
    """LiRA from logit-scaled confidences: `target` and each of `refs` (name -> data role ->
    phi) on "forget" and "test". Needs at least one reference."""
    if not refs:
        raise ValueError("offline LiRA needs at least one OUT reference model")
    stack = {k: np.stack([r[k] for r in refs.values()]) for k in ("forget", "test")}
    mean = {k: s.mean(0) for k, s in stack.items()}
    if len(refs) > 1:
        var = np.concatenate([s.var(0, ddof=1) for s in stack.values()])
        sigma = float(np.sqrt(var.mean()))
    else:
        sigma = (
            float(np.std(target["test"] - mean["test"], ddof=1)) if len(mean["test"]) > 1 else 1.0
        )
    sigma = sigma if np.isfinite(sigma) and sigma > 0 else 1.0
    z = {k: (target[k] - mean[k]) / sigma for k in ("forget", "test")}
    threshold = float(np.quantile(z["test"], 1 - alpha, method="higher")) if len(z["test"]) else 0.0
    fpr, tpr, auc = roc(z["forget"], z["test"])
    return Lira(tuple(refs), z["forget"], z["test"], sigma, threshold, fpr, tpr, auc)


@dataclass(frozen=True)
class ModelAttack:
    """Every attack against one model: the loss sweep, D_f's per-sample losses (n_f,), the
    per-class threshold attack and offline LiRA (None for a lone gold seed)."""

    sweep: LossSweep
    forget_loss: np.ndarray
    per_class: ClassThreshold
    lira: Lira | None

    def risk(self) -> np.ndarray:
        """(n_f,) per-sample membership risk on D_f, higher = more member-like: the LiRA z score
        when there is one, else -loss."""
        return self.lira.forget_score if self.lira is not None else -self.forget_loss


@dataclass(frozen=True)
class Attacks:
    """The attack view of a run: D_f's ids (n_f,), its easy mask (gold ensemble correct), and one
    ModelAttack per model (`models`: original, each gold seed, each method; same order as
    `views`). `alpha` is LiRA's false-positive rate on T."""

    forget_ids: np.ndarray
    easy: np.ndarray
    models: tuple[str, ...]
    views: tuple[ModelAttack, ...]
    alpha: float

    def view(self, model: str) -> ModelAttack:
        if model not in self.models:
            raise ValueError(f"unknown model {model!r}; models: {list(self.models)}")
        return self.views[self.models.index(model)]

    def riskiest(self, model: str, k: int | None = None) -> np.ndarray:
        """D_f's pool ids by decreasing risk under `model` (the first `k` when given)."""
        order = np.argsort(-self.view(model).risk(), kind="stable")
        return self.forget_ids[order[:k]]

    def summary(self) -> dict:
        """JSON-able headline numbers per model (None where a set is empty or no LiRA)."""
        return {
            "easy_rule": "easy = D_f samples the gold ensemble (mean softmax) classifies correctly",
            "forget_easy": int(self.easy.sum()),
            "forget_hard": int((~self.easy).sum()),
            "lira_alpha": self.alpha,
            "models": {m: self._one(v) for m, v in zip(self.models, self.views)},
        }

    def _one(self, v: ModelAttack) -> dict:
        def rate(flags: np.ndarray) -> float | None:
            return float(flags.mean()) if len(flags) else None

        def parts(flags: np.ndarray) -> dict:
            return {
                "forget_member_rate": rate(flags),
                "easy_member_rate": rate(flags[self.easy]),
                "hard_member_rate": rate(flags[~self.easy]),
            }

        out = {
            "loss": {
                "auc_forget_vs_test": v.sweep.auc,
                "threshold": v.sweep.tau,
                **parts(v.forget_loss <= v.sweep.tau),
            },
            "class_threshold": {
                "auc_forget_vs_test": v.per_class.auc,
                **parts(v.per_class.forget_member),
            },
            "lira": None,
        }
        if v.lira is not None:
            out["lira"] = {
                "auc_forget_vs_test": v.lira.auc,
                "references": list(v.lira.references),
                "test_member_rate": rate(v.lira.test_score > v.lira.threshold),
                **parts(v.lira.forget_member),
            }
        return out


def attacks(data: RunData, *, n_thresholds: int = 200, alpha: float = 0.05) -> Attacks:
    """Every attack against every model of `data` (original, gold seeds, methods)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    sets = ("forget", "retain", "holdout", "test")
    y = {k: data.labels[data.split[k]] for k in sets}
    golds = data.golds
    ensemble = np.mean([data.predictions[f"{g}/forget"] for g in golds], 0)
    easy = ensemble.argmax(1) == y["forget"]
    models = ["original", *golds, *(m for m in data.targets if m != "original")]
    phi = {
        m: {k: logit_confidence(data.predictions[f"{m}/{k}"], y[k]) for k in ("forget", "test")}
        for m in models
    }
    views = []
    for m in models:
        loss = {k: ev.losses(data.predictions[f"{m}/{k}"], y[k]) for k in sets}
        sweep = loss_sweep(loss, easy, n_thresholds)
        per_class = class_threshold(loss, y, data.num_classes, sweep.tau)
        refs = {g: phi[g] for g in golds if g != m}
        lira = lira_offline(phi[m], refs, alpha) if refs else None
        views.append(ModelAttack(sweep, loss["forget"], per_class, lira))
    return Attacks(data.split["forget"], easy, tuple(models), tuple(views), alpha)
