"""Tests for tmu.evaluate: every metric of method spec §7 against a hand-computed case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tmu import evaluate as ev


def onehot(classes, k=3, hot=1.0):
    """Rows with `hot` on the given class and the rest spread evenly."""
    p = np.full((len(classes), k), (1.0 - hot) / (k - 1))
    p[np.arange(len(classes)), classes] = hot
    return p


# Four samples, 3 classes. y = [0, 1, 2, 2].
Y = np.array([0, 1, 2, 2])
# gold predicts [0, 1, 2, 0]:   right, right, right, wrong
GOLD = onehot([0, 1, 2, 0], hot=0.8)
# unlearned predicts [0, 2, 1, 0]: right, wrong, wrong, wrong
UNL = onehot([0, 2, 1, 0], hot=0.6)


def test_accuracy_hand_case():
    assert ev.accuracy(GOLD, Y) == pytest.approx(3 / 4)
    assert ev.accuracy(UNL, Y) == pytest.approx(1 / 4)
    assert math.isnan(ev.accuracy(np.empty((0, 3)), np.empty(0, int)))


def test_per_class_accuracy_with_an_absent_class():
    # class 0: 1 sample, right -> 1.0; class 1: right -> 1.0; class 2: samples 2 (right), 3 (wrong)
    # -> 0.5;
    # class 3: no sample -> None.
    assert ev.per_class_accuracy(GOLD, Y, 4) == [1.0, 1.0, 0.5, None]
    # unlearned: class 0 right, class 1 wrong, class 2 both wrong.
    assert ev.per_class_accuracy(UNL, Y, 4) == [1.0, 0.0, 0.0, None]


def test_per_class_delta_hand_case():
    # classes present in both: |1-1| = 0, |1-0| = 1, |0.5-0| = 0.5 -> mean 0.5; class 3 (None)
    # skipped,
    # class 4 present in one list only skipped.
    assert ev.per_class_delta(
        [1.0, 1.0, 0.5, None, 0.2], [1.0, 0.0, 0.0, None, None]
    ) == pytest.approx(0.5)
    assert math.isnan(ev.per_class_delta([None], [0.3]))


def test_agreement_hand_case():
    # gold [0,1,2,0] vs unlearned [0,2,1,0]: rows 0 and 3 agree -> 2/4.
    assert ev.agreement(GOLD, UNL) == pytest.approx(0.5)
    assert ev.agreement(GOLD, GOLD) == 1.0


def test_quadrants_hand_case():
    # gold right/wrong = [R, R, R, W]; unlearned = [R, W, W, W]
    # aligned_easy (R,R): row 0 -> 1/4; over_forgotten (R,W): rows 1, 2 -> 2/4;
    # aligned_hard (W,W): row 3 -> 1/4; under_forgotten (W,R): none -> 0.
    q = ev.quadrants(UNL, GOLD, Y)
    assert q == pytest.approx(
        {"aligned_easy": 0.25, "aligned_hard": 0.25, "over_forgotten": 0.5, "under_forgotten": 0.0}
    )
    assert sum(q.values()) == pytest.approx(1.0)


def test_activation_distance_hand_case():
    a = np.array([[1.0, 0.0], [0.5, 0.5]])
    b = np.array([[0.0, 1.0], [0.5, 0.5]])
    # row 0: ||(1,-1)|| = sqrt 2; row 1: 0 -> mean sqrt(2)/2.
    assert ev.activation_distance(a, b) == pytest.approx(math.sqrt(2) / 2)
    assert ev.activation_distance(a, a) == 0.0


def test_js_divergence_identical_is_zero_and_disjoint_is_ln2():
    p = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    assert ev.js_divergence(p, p) == pytest.approx(0.0, abs=1e-9)
    # Disjoint one-hots: m = (1/2, 1/2); KL(a||m) = KL(b||m) = ln 2, JS = ln 2.
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    assert ev.js_divergence(a, b) == pytest.approx(math.log(2), abs=1e-9)


def test_js_divergence_hand_case():
    # a = (1, 0), b = (1/2, 1/2): m = (3/4, 1/4).
    # KL(a||m) = ln(4/3); KL(b||m) = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3); JS = 3/4 ln(4/3).
    a, b = np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]])
    assert ev.js_divergence(a, b) == pytest.approx(0.75 * math.log(4 / 3), abs=1e-9)
    assert ev.js_divergence(b, a) == pytest.approx(0.75 * math.log(4 / 3), abs=1e-9)  # symmetric


def test_losses_hand_case():
    p = np.array([[0.5, 0.5], [0.1, 0.9], [0.0, 1.0]])
    # -ln 0.5, -ln 0.9, and -ln(1e-12) for a zero probability (clipped, finite).
    assert ev.losses(p, np.array([0, 1, 0])) == pytest.approx(
        [math.log(2), -math.log(0.9), -math.log(1e-12)]
    )


def test_loss_threshold_hand_case():
    members, nonmembers = np.array([0.1, 0.2, 0.9]), np.array([0.5, 0.7, 1.0])
    # tau:       0.1   0.2   0.5   0.7   0.9   1.0
    # tpr:       1/3   2/3   2/3   2/3    1     1
    # fpr:        0     0    1/3   2/3   2/3    1
    # tpr-fpr:   1/3   2/3   1/3    0    1/3    0   -> best tau = 0.2
    assert ev.loss_threshold(members, nonmembers) == pytest.approx(0.2)


def test_loss_threshold_ties_go_to_the_smallest_tau():
    # tau:      0.1   0.2   0.3   0.4
    # tpr:      1/2   1/2    1     1
    # fpr:       0    1/2   1/2    1
    # tpr-fpr:  1/2    0    1/2    0   -> tie between 0.1 and 0.3 -> the smaller, 0.1.
    assert ev.loss_threshold(np.array([0.1, 0.3]), np.array([0.2, 0.4])) == pytest.approx(0.1)


def _probs_with_true(p_true):
    """2-class rows whose class-0 probability is p_true (all labels 0), so loss = -ln p_true."""
    p = np.asarray(p_true, dtype=float)
    return np.stack([p, 1 - p], axis=1), np.zeros(len(p), int)


def test_mia_member_rate_and_auc_hand_case():
    probs, y = {}, {}
    probs["retain"], y["retain"] = _probs_with_true([0.9, 0.8])  # losses 0.105, 0.223
    probs["holdout"], y["holdout"] = _probs_with_true([0.5])  # 0.693
    probs["test"], y["test"] = _probs_with_true([0.4, 0.6])  # 0.916, 0.511
    probs["forget"], y["forget"] = _probs_with_true([0.95, 0.7, 0.3])  # 0.051, 0.357, 1.204
    out = ev.mia(probs, y)
    # Threshold: both members (<= 0.223) and no non-member -> tpr - fpr = 1 at tau = -ln 0.8.
    assert out["threshold"] == pytest.approx(-math.log(0.8))
    # Forget flagged as member (loss <= tau): only 0.051 -> 1/3.
    assert out["forget_member_rate"] == pytest.approx(1 / 3)
    # AUC forget vs test with score -loss (i.e. ordered like p): pairs (forget > test):
    # 0.95 beats 0.4, 0.6; 0.7 beats 0.4, 0.6; 0.3 beats none -> 4 / 6.
    assert out["auc_forget_vs_test"] == pytest.approx(2 / 3)


def test_model_summary_fields():
    probs = {k: GOLD for k in ev.SETS}
    y = {k: Y for k in ev.SETS}
    s = ev.model_summary(probs, y, 3)
    assert s["acc"] == {k: 0.75 for k in ev.SETS}
    assert s["per_class"]["forget"] == [1.0, 1.0, 0.5]
    assert set(s["mia"]) == {"forget_member_rate", "auc_forget_vs_test", "threshold"}


def test_vs_gold_hand_case():
    out = ev.vs_gold(UNL, GOLD, Y, 3)
    assert out["delta_forget"] == pytest.approx(0.5)  # |1/4 - 3/4|
    assert out["delta_forget_signed"] == pytest.approx(-0.5)
    assert out["per_class_delta_forget"] == pytest.approx(0.5)  # mean(|1-1|, |0-1|, |0-0.5|)
    assert out["agreement_forget"] == pytest.approx(0.5)
    # Rows 0 and 3: same class, unl (0.6, 0.2, 0.2) vs gold (0.8, 0.1, 0.1): ||(-.2, .1, .1)|| =
    # sqrt(.06).
    # Rows 1 and 2: different classes, e.g. unl (.2, .2, .6) vs gold (.1, .8, .1): ||(.1, -.6,
    # .5)|| = sqrt(.62).
    assert out["activation_distance_forget"] == pytest.approx(
        (math.sqrt(0.06) + math.sqrt(0.62)) / 2
    )
    assert out["js_forget"] == pytest.approx(ev.js_divergence(UNL, GOLD))
    assert out["quadrants"] == ev.quadrants(UNL, GOLD, Y)


def test_mean_dicts_nested():
    rows = [{"a": 1.0, "q": {"x": 0.0, "y": 1.0}}, {"a": 3.0, "q": {"x": 1.0, "y": 1.0}}]
    assert ev.mean_dicts(rows) == {"a": 2.0, "q": {"x": 0.5, "y": 1.0}}


def test_vs_golds_averages_over_golds():
    out = ev.vs_golds(UNL, [GOLD, UNL], Y, 3)
    # vs GOLD delta 0.5, vs itself 0 -> 0.25; agreement 0.5 and 1 -> 0.75.
    assert out["delta_forget"] == pytest.approx(0.25)
    assert out["agreement_forget"] == pytest.approx(0.75)
    assert out["quadrants"]["aligned_easy"] == pytest.approx((0.25 + 0.25) / 2)


def test_noise_floor_none_with_one_gold():
    assert ev.noise_floor([GOLD], Y, 3) is None


def test_noise_floor_hand_case():
    g3 = onehot([0, 1, 2, 2], hot=0.8)  # all right: acc 1
    # pairs: (GOLD, UNL) delta 0.5; (GOLD, g3) delta 0.25; (UNL, g3) delta 0.75 -> mean 0.5,
    # std of (0.5, 0.25, 0.75) = sqrt(((0)^2 + 0.25^2 + 0.25^2) / 3) = 0.25 * sqrt(2/3).
    floor = ev.noise_floor([GOLD, UNL, g3], Y, 3)
    assert floor["delta_forget"] == pytest.approx(0.5)
    assert floor["delta_forget_std"] == pytest.approx(0.25 * math.sqrt(2 / 3))
    # agreement: GOLD/UNL 2/4, GOLD/g3 3/4 (rows 0,1,2), UNL/g3 1/4 (row 0) -> 0.5.
    assert floor["agreement_forget"] == pytest.approx(0.5)


def test_predictor_quality_hand_case():
    # GOLD right = [T, T, T, F]; predicted easy = [T, F, T, F]:
    # accuracy 3/4; recall on easy 2/3, on hard 1/1 -> balanced 5/6; true_hard 1; predicted_hard 2.
    easy = np.array([True, False, True, False])
    q = ev.predictor_quality(easy, [GOLD], Y)
    assert q["accuracy"] == pytest.approx(0.75)
    assert q["balanced_accuracy"] == pytest.approx(5 / 6)
    assert q["true_hard"] == 1.0 and q["predicted_hard"] == 2
    # Averaged with an all-right gold (accuracy 2/4, balanced = recall on easy only = 2/4):
    q2 = ev.predictor_quality(easy, [GOLD, onehot([0, 1, 2, 2], hot=0.8)], Y)
    assert q2["accuracy"] == pytest.approx((0.75 + 0.5) / 2)
    assert q2["balanced_accuracy"] == pytest.approx((5 / 6 + 0.5) / 2)
    assert q2["true_hard"] == pytest.approx(0.5)
    assert "auroc" not in q2  # without p(easy)


def test_predictor_auroc_hand_case():
    # GOLD right = [T, T, T, F]. p(easy) ranks the hard sample below 2 of the 3 easy ones:
    # pairs (easy, hard) ordered right: 0.9 > 0.5, 0.6 > 0.5, 0.4 < 0.5 -> AUROC 2/3.
    easy = np.array([True, True, False, False])
    q = ev.predictor_quality(easy, [GOLD], Y, np.array([0.9, 0.6, 0.4, 0.5]))
    assert q["auroc"] == pytest.approx(2 / 3)
    # an all-right gold has no hard sample: no AUROC
    q_all = ev.predictor_quality(easy, [onehot([0, 1, 2, 2], hot=0.8)], Y, np.ones(4) / 2)
    assert q_all["auroc"] is None


def test_feature_shift_is_the_ks_statistic_per_column():
    twin = np.c_[np.arange(10.0), np.arange(10.0)]
    real = np.c_[np.arange(10.0), np.arange(10.0) + 100]
    assert ev.feature_shift(twin, real, ["DF", "AF"]) == {"DF": 0.0, "AF": 1.0}
    half = np.c_[np.arange(5.0, 15.0)]  # overlaps the twin's 0..9 on 5..9
    assert ev.feature_shift(twin[:, :1], half, ["CF"])["CF"] == pytest.approx(0.5)
