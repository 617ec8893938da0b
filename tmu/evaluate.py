"""Every metric of method spec §7, each defined once, as pure functions of predicted probabilities.

Inputs are softmax outputs `probs` of shape (n, K) and true labels `y` of shape (n,). Accuracies
are fractions in [0, 1]; per-class lists are indexed by class id with None where a class has no
sample.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from sklearn.metrics import roc_auc_score

SETS = ("forget", "retain", "holdout", "test")


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose arg-max is the true label (NaN for an empty set)."""
    return float((probs.argmax(1) == y).mean()) if len(y) else float("nan")


def per_class_accuracy(probs: np.ndarray, y: np.ndarray, num_classes: int) -> list[float | None]:
    """Accuracy within each class; None where the class has no sample."""
    correct = probs.argmax(1) == y
    return [float(correct[y == c].mean()) if (y == c).any() else None for c in range(num_classes)]


def per_class_delta(acc_a: list[float | None], acc_b: list[float | None]) -> float:
    """Mean over classes (present in both) of |acc_a[c] - acc_b[c]|."""
    gaps = [abs(a - b) for a, b in zip(acc_a, acc_b) if a is not None and b is not None]
    return float(np.mean(gaps)) if gaps else float("nan")


def agreement(probs_a: np.ndarray, probs_b: np.ndarray) -> float:
    """Fraction of rows where both models predict the same class."""
    return float((probs_a.argmax(1) == probs_b.argmax(1)).mean())


def quadrants(probs_u: np.ndarray, probs_g: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The 2x2 alignment table as fractions of the rows (gold right/wrong x unlearned
    right/wrong)."""
    g, u = probs_g.argmax(1) == y, probs_u.argmax(1) == y
    return {
        "aligned_easy": float((g & u).mean()),
        "aligned_hard": float((~g & ~u).mean()),
        "over_forgotten": float((g & ~u).mean()),
        "under_forgotten": float((~g & u).mean()),
    }


def flip_effect(
    probs: np.ndarray, y: np.ndarray, flipped: np.ndarray, targets: np.ndarray, gold=None
) -> dict[str, int]:
    """Whether a method's flips took effect: of the `flips` forget samples it trained towards
    another label (`flipped`, a mask over the rows; `targets`, that label per row), how many
    the unlearned model (`probs`) no longer predicts as their given label `y` (`moved`) and how
    many it predicts as the flip label (`landed`); with the gold ensemble's softmax `gold`, how
    many flip labels are gold's own class (`on_gold`: evaluation only)."""
    pred, f = probs.argmax(1), np.asarray(flipped, dtype=bool)
    out = {
        "flips": int(f.sum()),
        "moved": int((pred[f] != y[f]).sum()),
        "landed": int((pred[f] == targets[f]).sum()),
    }
    if gold is not None:
        out["on_gold"] = int((gold.argmax(1)[f] == targets[f]).sum())
    return out


def activation_distance(probs_a: np.ndarray, probs_b: np.ndarray) -> float:
    """Mean L2 distance between the two models' softmax outputs."""
    return float(np.linalg.norm(probs_a - probs_b, axis=1).mean())


def js_divergence(probs_a: np.ndarray, probs_b: np.ndarray) -> float:
    """Mean Jensen-Shannon divergence (natural log, in [0, ln 2]) between softmax outputs."""
    a, b = np.clip(probs_a, 1e-12, 1), np.clip(probs_b, 1e-12, 1)
    m = (a + b) / 2
    kl = lambda p, q: (p * np.log(p / q)).sum(1)  # noqa: E731
    return float((0.5 * kl(a, m) + 0.5 * kl(b, m)).mean())


def losses(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample cross-entropy from probabilities."""
    return -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))


def loss_threshold(member_loss: np.ndarray, nonmember_loss: np.ndarray) -> float:
    """The loss threshold tau (member iff loss <= tau) with the best balanced accuracy between
    members and non-members; ties go to the smallest tau."""
    cands = np.unique(np.concatenate([member_loss, nonmember_loss]))
    tpr = np.searchsorted(np.sort(member_loss), cands, side="right") / len(member_loss)
    fpr = np.searchsorted(np.sort(nonmember_loss), cands, side="right") / len(nonmember_loss)
    return float(cands[np.argmax(tpr - fpr)])


def mia(probs: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict[str, float]:
    """Loss-threshold membership inference: calibrated on retain (members) against holdout ∪ test
    (non-members); the fraction of forget flagged as member, and the AUC of forget vs test
    (score = -loss; 0.5 = indistinguishable from unseen data)."""
    loss = {k: losses(probs[k], y[k]) for k in ("forget", "retain", "holdout", "test")}
    tau = loss_threshold(loss["retain"], np.concatenate([loss["holdout"], loss["test"]]))
    scores = -np.concatenate([loss["forget"], loss["test"]])
    truth = np.r_[np.ones(len(loss["forget"])), np.zeros(len(loss["test"]))]
    return {
        "forget_member_rate": float((loss["forget"] <= tau).mean()),
        "auc_forget_vs_test": float(roc_auc_score(truth, scores)),
        "threshold": tau,
    }


def model_summary(probs: dict[str, np.ndarray], y: dict[str, np.ndarray], num_classes: int) -> dict:
    """Accuracy and per-class accuracy of one model on each data role, plus its MIA figures."""
    return {
        "acc": {k: accuracy(probs[k], y[k]) for k in SETS},
        "per_class": {k: per_class_accuracy(probs[k], y[k], num_classes) for k in SETS},
        "mia": mia(probs, y),
    }


def vs_gold(probs_u: np.ndarray, probs_g: np.ndarray, y: np.ndarray, num_classes: int) -> dict:
    """Gaps of a model to one gold model on the forget set."""
    acc_u, acc_g = accuracy(probs_u, y), accuracy(probs_g, y)
    return {
        "delta_forget": abs(acc_u - acc_g),
        "delta_forget_signed": acc_u - acc_g,
        "per_class_delta_forget": per_class_delta(
            per_class_accuracy(probs_u, y, num_classes), per_class_accuracy(probs_g, y, num_classes)
        ),
        "agreement_forget": agreement(probs_u, probs_g),
        "activation_distance_forget": activation_distance(probs_u, probs_g),
        "js_forget": js_divergence(probs_u, probs_g),
        "quadrants": quadrants(probs_u, probs_g, y),
    }


def mean_dicts(rows: list[dict]) -> dict:
    """Element-wise mean of equally shaped nested dicts of numbers."""
    first = rows[0]
    return {
        k: mean_dicts([r[k] for r in rows])
        if isinstance(first[k], dict)
        else float(np.mean([r[k] for r in rows]))
        for k in first
    }


def vs_golds(probs_u: np.ndarray, golds: list[np.ndarray], y: np.ndarray, num_classes: int) -> dict:
    """`vs_gold` averaged over every gold seed (quadrants: mean fractions of the forget set)."""
    return mean_dicts([vs_gold(probs_u, g, y, num_classes) for g in golds])


def noise_floor(golds: list[np.ndarray], y: np.ndarray, num_classes: int) -> dict | None:
    """The same gaps between gold models of different seeds, averaged over all pairs; None with
    fewer than two golds. Adds the spread (std over pairs) of |delta_forget|."""
    pairs = [vs_gold(a, b, y, num_classes) for a, b in combinations(golds, 2)]
    if not pairs:
        return None
    floor = mean_dicts(pairs)
    floor["delta_forget_std"] = float(np.std([p["delta_forget"] for p in pairs]))
    return floor


def feature_shift(twin: np.ndarray, real: np.ndarray, names: list[str]) -> dict[str, float]:
    """Two-sample Kolmogorov-Smirnov statistic per feature column between the twin set's features
    (H_f under M_t) and the forget set's (D_f under M_o): 0 = same distribution, 1 = disjoint. A
    large value says the predictor is applied outside what it learnt on."""
    from scipy.stats import ks_2samp

    return {n: float(ks_2samp(twin[:, k], real[:, k]).statistic) for k, n in enumerate(names)}


def predictor_quality(
    easy: np.ndarray, golds: list[np.ndarray], y: np.ndarray, p_easy: np.ndarray | None = None
) -> dict:
    """Accuracy and balanced accuracy of the predicted easy mask against each gold model's
    correctness on the forget set, and the AUROC of p(easy) for it (over the golds that get some
    samples right and some wrong; None if none does), averaged over golds (evaluation only: never
    fed back)."""
    rows, aurocs = [], []
    for g in golds:
        truth = g.argmax(1) == y
        recalls = [
            float((easy[truth == v] == v).mean()) for v in (True, False) if (truth == v).any()
        ]
        rows.append(
            {
                "accuracy": float((easy == truth).mean()),
                "balanced_accuracy": float(np.mean(recalls)),
                "true_hard": float((~truth).sum()),
            }
        )
        if p_easy is not None and 0 < truth.sum() < len(truth):
            aurocs.append(float(roc_auc_score(truth, p_easy)))
    out = mean_dicts(rows)
    out["predicted_hard"] = int((~easy).sum())
    if p_easy is not None:  # None where no gold model has both easy and hard samples
        out["auroc"] = float(np.mean(aurocs)) if aurocs else None
    return out
