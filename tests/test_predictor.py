"""Tests for tmu.predictor: both predictors, class weighting, the decision rules, out-of-fold."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from tmu.predictor import (
    PREDICTORS,
    LogisticPredictor,
    MLPPredictor,
    decide_easy,
    gain_threshold,
    make_predictor,
    out_of_fold_proba,
)

PARAMS = {"mlp": {"epochs": 150, "lr": 0.01}, "logistic": {}}


def imbalanced(n_easy=190, n_hard=10, seed=0):
    """3 features; hard samples are shifted by +0.8 in every feature, overlapping the easy ones."""
    rng = np.random.default_rng(seed)
    X = np.r_[rng.normal(0.0, 1.0, (n_easy, 3)), rng.normal(0.8, 1.0, (n_hard, 3))]
    g = np.r_[np.ones(n_easy, np.int64), np.zeros(n_hard, np.int64)]
    return X, g


@pytest.mark.parametrize("kind", sorted(PREDICTORS))
def test_fit_returns_self_and_probabilities_in_0_1(kind):
    X, g = imbalanced()
    pred = make_predictor(kind, seed=0, **PARAMS[kind])
    assert pred.fit(X, g) is pred
    p = pred.predict_proba_easy(X[:17])
    assert p.shape == (17,) and p.dtype == np.float64
    assert ((p >= 0) & (p <= 1)).all()


@pytest.mark.parametrize("kind", sorted(PREDICTORS))
def test_fit_is_seeded(kind):
    X, g = imbalanced()
    a = make_predictor(kind, seed=3, **PARAMS[kind]).fit(X, g).predict_proba_easy(X)
    b = make_predictor(kind, seed=3, **PARAMS[kind]).fit(X, g).predict_proba_easy(X)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", sorted(PREDICTORS))
def test_class_weighting_makes_the_rare_hard_class_predicted(kind):
    X, g = imbalanced()
    # Without weighting, the 95 % prior wins everywhere: no sample falls below p(easy) = 0.5.
    plain = LogisticRegression().fit(X, g).predict_proba(X)[:, 1]
    assert (plain < 0.5).sum() == 0
    p = make_predictor(kind, seed=0, **PARAMS[kind]).fit(X, g).predict_proba_easy(X)
    hard = g == 0
    assert (p[hard] < 0.5).sum() >= 5  # most hard samples are caught
    assert p[hard].mean() < p[~hard].mean()


def test_separable_data_is_learnt_by_the_mlp():
    X = np.r_[np.zeros((20, 2)), np.ones((20, 2))]
    g = np.r_[np.ones(20, np.int64), np.zeros(20, np.int64)]
    p = MLPPredictor(epochs=200, lr=0.01, seed=0).fit(X, g).predict_proba_easy(X)
    assert (p[:20] > 0.5).all() and (p[20:] < 0.5).all()


def test_logistic_with_one_class_predicts_that_class():
    X = np.zeros((4, 3))
    assert LogisticPredictor().fit(X, np.ones(4, np.int64)).predict_proba_easy(X) == pytest.approx(
        [1.0] * 4
    )
    assert LogisticPredictor().fit(X, np.zeros(4, np.int64)).predict_proba_easy(X) == pytest.approx(
        [0.0] * 4
    )


def test_logistic_refit_on_two_classes_forgets_the_one_class_fit():
    X, g = imbalanced()
    pred = LogisticPredictor().fit(X[:5], g[:5])  # first five rows are all easy
    p = pred.fit(X, g).predict_proba_easy(X)  # refit with both classes
    assert not np.allclose(p, 1.0)
    assert np.allclose(p, LogisticPredictor().fit(X, g).predict_proba_easy(X))


@pytest.mark.parametrize("cls", [MLPPredictor, LogisticPredictor])
def test_unfitted_predictor(cls):
    with pytest.raises(RuntimeError, match=rf"{cls.__name__} is not fitted; call fit\(\) first"):
        cls().predict_proba_easy(np.zeros((2, 3)))


def test_unknown_predictor():
    with pytest.raises(
        ValueError, match=r"unknown predictor 'svm'; valid predictors: \['logistic', 'mlp'\]"
    ):
        make_predictor("svm")


# ----------------------------------------------------------------------------- decision rules

P = np.array([0.9, 0.1, 0.6, 0.3, 0.8, 0.2, 0.7])


@pytest.mark.parametrize(
    "rate,n_easy", [(0.0, 0), (0.3, 2), (0.6, 4), (1.0, 7), (1.7, 7), (-0.2, 0)]
)
def test_rate_rule_picks_exactly_round_rate_n_top_samples(rate, n_easy):
    easy = decide_easy(P, "rate", rate)
    assert easy.dtype == bool and easy.sum() == n_easy  # round(0.3 * 7) = 2, round(0.6 * 7) = 4
    assert np.array_equal(np.flatnonzero(easy), np.sort(np.argsort(-P)[:n_easy]))
    if 0 < n_easy < len(P):
        assert P[easy].min() > P[~easy].max()


def test_rate_rule_hand_case():
    # top 4 by p: 0.9 (id 0), 0.8 (id 4), 0.7 (id 6), 0.6 (id 2).
    assert decide_easy(P, "rate", 4 / 7).tolist() == [True, False, True, False, True, False, True]


def test_rate_rule_breaks_ties_by_position():
    assert decide_easy(np.array([0.5, 0.5, 0.5, 0.5]), "rate", 0.5).tolist() == [
        True,
        True,
        False,
        False,
    ]


def test_threshold_rule():
    p = np.array([0.2, 0.5, 0.49, 0.51])
    assert decide_easy(p, "threshold", easy_rate=0.0).tolist() == [False, True, False, True]


def test_unknown_rule():
    with pytest.raises(
        ValueError,
        match=r"unknown decision rule 'median'; valid rules: \['rate', 'threshold', 'gain'\]",
    ):
        decide_easy(P, "median", 0.5)


def test_gain_rule_is_a_threshold_on_p_easy():
    p = np.array([0.1, 0.3, 0.29, 0.9])
    assert decide_easy(p, "gain", 0.5, threshold=0.3).tolist() == [False, True, False, True]


def calibrated(n=4000, seed=0):
    """p(easy) already calibrated: g ~ Bernoulli(p)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.99, n)
    return p, (rng.uniform(size=n) < p).astype(np.int64)


@pytest.mark.parametrize("match", [1.0, 0.5, 0.25])
def test_gain_threshold_is_the_break_even_point_of_a_calibrated_predictor(match):
    # Flip iff p_hard * match > 1 - p_hard, i.e. p_easy < match / (1 + match).
    p, g = calibrated()
    assert gain_threshold(p, g, match) == pytest.approx(match / (1 + match), abs=0.04)


def test_gain_threshold_maps_back_through_the_calibration():
    # A predictor that is overconfident about "easy" (reports p^(1/3)) gets its threshold moved.
    p, g = calibrated()
    t = gain_threshold(p ** (1 / 3), g, 1.0)
    assert t == pytest.approx(0.5 ** (1 / 3), abs=0.04)


def test_gain_threshold_flips_nothing_without_signal():
    p, g = calibrated()
    assert gain_threshold(1 - p, g, 1.0) == 0.0  # anti-correlated, half hard: never flip
    assert gain_threshold(p, np.ones_like(g), 1.0) == 0.0  # no hard twin sample
    assert gain_threshold(p, g, 0.0) == 0.0  # a flip never lands on gold's label


def test_gain_threshold_flips_everything_when_every_twin_sample_is_hard():
    # A memorised mislabeled twin: the twin gold gets every H_f sample wrong. Every flip that
    # lands on gold's class gains, so every sample is hard, not (as a "no signal" 0) easy.
    p, _ = calibrated()
    hard = np.zeros(len(p), dtype=np.int64)
    t = gain_threshold(p, hard, 0.8)
    assert t > 1.0 and not decide_easy(np.array([0.0, 0.5, 1.0]), "gain", 0.0, t).any()
    assert gain_threshold(p, hard, 0.0) == 0.0  # unless no flip can land on gold's class


def test_a_predictor_that_does_not_rank_falls_back_to_the_twins_base_rate():
    # Two easy samples among 500 (a memorised mislabeled twin): no ranking to speak of, but a
    # flip almost surely gains, so every sample is flipped rather than none.
    rng = np.random.default_rng(0)
    g = np.zeros(500, dtype=np.int64)
    g[:2] = 1
    p = rng.uniform(0.4, 0.6, 500)
    p[:2] = 0.1  # the easy ones look hardest: a slope <= 0
    assert gain_threshold(p, g, 0.8) > 1.0
    p[:2] = 0.9  # now the two hard ones look easiest: again a slope <= 0
    assert gain_threshold(p, 1 - g, 0.8) == 0.0  # mostly easy: flip none


# ----------------------------------------------------------------------------- out-of-fold


@pytest.mark.parametrize("kind", sorted(PREDICTORS))
def test_out_of_fold_proba_shape_and_range(kind):
    X, g = imbalanced()
    p = out_of_fold_proba(kind, X, g, folds=3, seed=0, **PARAMS[kind])
    assert p.shape == (200,) and ((p >= 0) & (p <= 1)).all()
    # Each row comes from a predictor that never saw it, so it differs from the in-sample fit.
    in_sample = make_predictor(kind, seed=0, **PARAMS[kind]).fit(X, g).predict_proba_easy(X)
    assert not np.allclose(p, in_sample)
    assert np.array_equal(p, out_of_fold_proba(kind, X, g, folds=3, seed=0, **PARAMS[kind]))


@pytest.mark.parametrize("n_hard", [0, 1])
def test_out_of_fold_falls_back_to_in_sample_with_fewer_than_two_hard(n_hard):
    X, g = imbalanced(n_easy=30, n_hard=n_hard)
    p = out_of_fold_proba("logistic", X, g, folds=5, seed=0)
    assert np.array_equal(p, LogisticPredictor(seed=0).fit(X, g).predict_proba_easy(X))


def test_out_of_fold_shrinks_folds_to_the_hard_count():
    X, g = imbalanced(n_easy=30, n_hard=2)  # 5 folds asked, only 2 hard samples: 2 folds
    p = out_of_fold_proba("logistic", X, g, folds=5, seed=0)
    assert p.shape == (32,) and np.isfinite(p).all()


def test_a_registered_decision_rule_is_valid_in_a_config_and_decides():
    """A new rule is one registry entry: the config accepts it, the plan validates it, and
    `decide_easy` and the twin's candidates use it."""
    from tmu.config import RunConfig, from_dict
    from tmu.pipeline.plan import validate
    from tmu.predictor import DECISION_RULES, DecisionRule, register_rule

    register_rule(DecisionRule("all_hard", lambda p, rate, t: np.zeros(len(p), dtype=bool)))
    try:
        cfg = from_dict(
            RunConfig,
            {"dataset": "digits", "predictor": {"rule": "all_hard", "compare_rules": ["rate"]}},
        )
        validate(cfg)
        assert not decide_easy(np.array([0.9, 0.1]), "all_hard", 0.5).any()
    finally:
        DECISION_RULES.pop("all_hard")
    with pytest.raises(ValueError, match=r"unknown decision rule\(s\) \['all_hard'\]"):
        validate(cfg)
    unknown = from_dict(RunConfig, {"dataset": "digits", "predictor": {"rule": "x"}})
    with pytest.raises(ValueError, match=r"\['x'\] in predictor.rule; valid: \['gain', 'rate', "):
        validate(unknown)
    bad = from_dict(RunConfig, {"dataset": "digits", "predictor": {"compare_rules": ["twin"]}})
    with pytest.raises(ValueError, match=r"\['twin'\] in compare_rules; valid: "):
        validate(bad)
