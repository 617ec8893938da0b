"""Tests for tmu.twin: the twin model, the curriculum model, the fitted predictor (each forget-spec
kind's twin forget set H_f is tested in test_forget.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tmu.config import PredictorConfig, TrainConfig, TwinConfig
from tmu.training import predict, train_from_scratch
from tmu.twin import (
    RETRAIN_SEED,
    accuracy_on,
    fit_predictor,
    flip_match_rate,
    spread_ratio,
    train_curriculum,
    train_twin_model,
)

CPU = torch.device("cpu")
# The tiny original's recipe (conftest.TINY_TRAIN), for the twins retrained from scratch.
TINY_TRAIN = TrainConfig(
    epochs=5, lr=0.05, batch_size=16, momentum=0.9, weight_decay=5e-4, schedule="cosine"
)


def twin_cfg(**kw) -> TwinConfig:
    base = dict(
        min_size=50,
        max_epochs=3,
        fit_margin=0.0,
        lr=0.05,
        retain_per_forget=1.0,
        curriculum_epochs=1,
        curriculum_lr=0.05,
    )
    return TwinConfig(**{**base, **kw})


# ----------------------------------------------------------------------------- twin model


def _epochs_run(tiny, target, cfg):
    h_f = tiny.holdout[:50]
    calls = []
    model, fit = train_twin_model(
        tiny.model,
        tiny.build,
        tiny.x,
        tiny.labels,
        tiny.train,
        h_f,
        target,
        cfg,
        TINY_TRAIN,
        device=CPU,
        seed=0,
        progress=calls.append,
    )
    return model, h_f, calls, fit


def test_twin_model_stops_once_it_reaches_its_target(tiny):
    model, h_f, calls, fit = _epochs_run(tiny, target=0.0, cfg=twin_cfg(max_epochs=5))
    assert calls == pytest.approx([0.3 / 5])  # one epoch was enough (auto: 30 % of the stage)
    assert model is not tiny.model
    assert (fit.mode, fit.epochs, fit.target) == ("finetune", 1, 0.0)
    assert fit.twin == accuracy_on(model, tiny.x, tiny.labels, h_f, CPU)


def test_a_finetuned_twin_runs_to_max_epochs_when_the_target_is_out_of_reach(tiny):
    cfg = twin_cfg(max_epochs=3, mirror="finetune")
    model, h_f, calls, fit = _epochs_run(tiny, target=1.5, cfg=cfg)
    assert calls == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert (fit.mode, fit.epochs) == ("finetune", 3)


def test_auto_retrains_the_twin_from_scratch_when_finetuning_falls_short(tiny):
    model, h_f, calls, fit = _epochs_run(tiny, target=1.5, cfg=twin_cfg(max_epochs=2))
    assert (fit.mode, fit.epochs) == ("retrain", TINY_TRAIN.epochs)
    assert calls[:2] == pytest.approx([0.15, 0.3]) and calls[-1] == pytest.approx(1.0)
    # A fresh network trained with the recipe on D ∪ H_f, under a seed of its own: exactly what
    # train_from_scratch gives, and not a copy of M_o.
    ids = np.union1d(tiny.train, h_f)
    want = train_from_scratch(
        lambda: tiny.build(RETRAIN_SEED),
        tiny.x,
        tiny.labels,
        ids,
        TINY_TRAIN,
        device=CPU,
        seed=RETRAIN_SEED,
    )
    got, ref = model.state_dict(), want.state_dict()
    assert all(torch.equal(got[k], ref[k]) for k in ref)
    assert fit.twin == accuracy_on(model, tiny.x, tiny.labels, h_f, CPU) > 0.5


def test_retrain_mode_never_finetunes(tiny):
    model, h_f, calls, fit = _epochs_run(tiny, target=0.0, cfg=twin_cfg(mirror="retrain"))
    assert fit.mode == "retrain" and calls[-1] == pytest.approx(1.0)


def test_twin_model_fits_the_twin_forget_set_better_than_the_original(tiny):
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    cfg = twin_cfg(max_epochs=4, lr=0.02, mirror="finetune")
    model, h_f, calls, fit = _epochs_run(tiny, target=1.0, cfg=cfg)
    acc = accuracy_on(model, tiny.x, tiny.labels, h_f, CPU)
    assert acc >= 1.0 or len(calls) == 4  # reached its target or ran out of epochs
    assert acc > accuracy_on(tiny.model, tiny.x, tiny.labels, h_f, CPU)
    assert all(
        torch.equal(before[k], v) for k, v in tiny.model.state_dict().items()
    )  # M_o untouched


def test_curriculum_model_is_fresh_and_seeded(tiny):
    cfg = twin_cfg(curriculum_epochs=1)
    a, b = (
        train_curriculum(
            lambda: tiny.build(1), tiny.x, tiny.labels, tiny.train[:200], cfg, device=CPU, seed=1
        )
        for _ in range(2)
    )
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), tiny.model.parameters()))


# ----------------------------------------------------------------------------- fitted predictor


def test_fit_predictor_rate_is_the_twin_easy_rate():
    rng = np.random.default_rng(0)
    feats = np.r_[rng.normal(0, 1, (45, 3)), rng.normal(2, 1, (15, 3))]
    g = np.r_[np.ones(45, np.int64), np.zeros(15, np.int64)]
    cfg = PredictorConfig(kind="logistic", rule="rate", folds=3, epochs=10, lr=0.01)
    fitted = fit_predictor(feats, g, cfg, seed=0)
    assert fitted.easy_rate == pytest.approx(0.75)
    assert fitted.oof_proba.shape == (60,) and fitted.oof_easy.sum() == 45
    proba, easy = fitted.predict(rng.normal(0, 1, (8, 3)))
    assert proba.shape == (8,) and easy.sum() == 6  # round(0.75 * 8)


def test_spread_ratio_is_one_for_the_whole_class_and_small_for_a_cluster():
    # Class 0: four corners of a square (mean distance to centroid sqrt(2)); class 1 elsewhere.
    points = np.array([[0, 0], [2, 0], [0, 2], [2, 2], [10, 10], [11, 10]], dtype=float)
    labels = np.array([0, 0, 0, 0, 1, 1])
    everything = labels == 0
    assert spread_ratio(points, labels, everything) == pytest.approx(1.0)
    # Two neighbouring corners: distance to their centroid 1, over sqrt(2) for the class.
    pair = np.array([True, True, False, False, False, False])
    assert spread_ratio(points, labels, pair) == pytest.approx(1 / np.sqrt(2))
    assert np.isnan(
        spread_ratio(points, labels, np.array([True, False, False, False, False, False]))
    )


def test_flip_match_rate_counts_runner_ups_that_are_the_twin_golds_wrong_label():
    labels = np.array([0, 1, 2, 0])
    # twin model: runner-up classes (true class excluded) are 2, 0, 1, 1
    twin = np.array([[0.5, 0.1, 0.4], [0.3, 0.6, 0.1], [0.1, 0.3, 0.6], [0.2, 0.7, 0.1]])
    # twin gold (M_o): right on sample 0, wrong on 1 (says 0), 2 (says 0), 3 (says 1)
    gold = np.array([[0.9, 0.1, 0.0], [0.6, 0.3, 0.1], [0.5, 0.2, 0.3], [0.1, 0.8, 0.1]])
    assert flip_match_rate(twin, gold, labels) == pytest.approx(2 / 3)  # samples 1 and 3 match
    assert flip_match_rate(twin, np.eye(3)[labels], labels) == 0.0  # no hard sample


def test_fit_predictor_gain_rule_fits_a_threshold_and_applies_it():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    g = (X[:, 0] + 0.5 * rng.normal(size=300) > -1.0).astype(np.int64)
    cfg = PredictorConfig(kind="logistic", rule="gain", folds=3)
    fitted = fit_predictor(X, g, cfg, seed=0, flip_match=0.5)
    assert 0.0 < fitted.threshold < 1.0 and fitted.rule == "gain"
    assert np.array_equal(fitted.oof_easy, fitted.oof_proba >= fitted.threshold)
    proba, easy = fitted.predict(X)
    assert np.array_equal(easy, proba >= fitted.threshold)
    # a stricter flip (lower match) flips fewer samples
    strict = fit_predictor(X, g, cfg, seed=0, flip_match=0.1)
    assert (
        strict.threshold < fitted.threshold and (~strict.oof_easy).sum() < (~fitted.oof_easy).sum()
    )


def test_the_twin_chooses_the_flip_policy_that_lands_on_its_golds_class(tiny):
    from tmu.twin import choose_flip_policy, flip_match
    from tmu.unlearn import Env, Problem
    from tmu.unlearn.flips import FLIP_LABELS

    h_f = tiny.holdout[:80]
    problem = Problem(tiny.x, tiny.labels, tiny.train, h_f, 10)
    env = Env(CPU, 0, tiny.build)
    gold = predict(tiny.model, tiny.x, h_f, device=CPU)
    policy, matches = choose_flip_policy(tiny.model, problem, gold, env)
    assert set(matches) == {"runner_up", "neighbours"} and matches[policy] == max(matches.values())
    for name, rate in matches.items():
        flips = FLIP_LABELS[name](tiny.model, problem, env)
        assert rate == flip_match(flips, gold, tiny.labels[h_f])
    only = choose_flip_policy(tiny.model, problem, gold, env, ("random",))
    assert only[0] == "random" and set(only[1]) == {"random"}
    # flip_match by hand: two of the three samples gold gets wrong are flipped to gold's class
    probs = np.eye(3)[[1, 2, 0, 0]]
    assert flip_match(np.array([1, 0, 0, 2]), probs, np.array([0, 0, 1, 0])) == pytest.approx(2 / 3)
