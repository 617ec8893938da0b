"""Tests for tmu.twin: the twin forget set H_f per spec kind, the twin model, the fitted predictor."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tmu.config import PredictorConfig, TwinConfig
from tmu.twin import (accuracy_on, fit_predictor, select_twin_forget, spread_ratio, train_curriculum,
                      train_twin_model)

CPU = torch.device("cpu")


def twin_cfg(**kw) -> TwinConfig:
    base = dict(min_size=50, max_epochs=3, fit_margin=0.0, lr=0.05, retain_per_forget=1.0,
                curriculum_epochs=1, curriculum_lr=0.05)
    return TwinConfig(**{**base, **kw})


# ----------------------------------------------------------------------------- select_twin_forget

def test_random_twin_is_a_random_part_of_holdout(tiny):
    forget = tiny.train[:30]
    h_f = select_twin_forget("random:0.05", tiny.labels, tiny.holdout, forget, min_size=80, seed=0)
    assert len(h_f) == 80 and set(h_f) <= set(tiny.holdout) and np.all(np.diff(h_f) > 0)
    assert np.array_equal(h_f, select_twin_forget("random:0.05", tiny.labels, tiny.holdout, forget, 80, 0))
    # |D_f| above min_size wins; and never more than H holds.
    assert len(select_twin_forget("random:0.5", tiny.labels, tiny.holdout, tiny.train[:120], 80, 0)) == 120
    assert len(select_twin_forget("random:0.5", tiny.labels, tiny.holdout, tiny.train[:300], 80, 0)) == 200


@pytest.mark.parametrize("spec", ["class:3", "subclass:3:0.3"])
def test_class_and_subclass_twins_are_the_holdout_samples_of_those_classes(tiny, spec):
    forget = tiny.train[tiny.labels[tiny.train] == 3][:10]
    h_f = select_twin_forget(spec, tiny.labels, tiny.holdout, forget, min_size=500, seed=0)
    assert np.array_equal(h_f, tiny.holdout[tiny.labels[tiny.holdout] == 3])


def test_two_class_twin(tiny):
    forget = tiny.train[np.isin(tiny.labels[tiny.train], [1, 7])]
    h_f = select_twin_forget("class:1,7", tiny.labels, tiny.holdout, forget, min_size=0, seed=0)
    assert np.array_equal(h_f, tiny.holdout[np.isin(tiny.labels[tiny.holdout], [1, 7])])


def test_ids_twin_matches_the_class_histogram(tiny):
    # 6 of class 0, 3 of class 5, 1 of class 9.
    forget = np.sort(np.r_[tiny.train[tiny.labels[tiny.train] == 0][:6], tiny.train[tiny.labels[tiny.train] == 5][:3],
                           tiny.train[tiny.labels[tiny.train] == 9][:1]])
    spec = "ids:" + ",".join(map(str, forget))
    h_f = select_twin_forget(spec, tiny.labels, tiny.holdout, forget, min_size=0, seed=0)
    assert set(h_f) <= set(tiny.holdout)
    assert np.array_equal(np.bincount(tiny.labels[h_f], minlength=10), np.bincount(tiny.labels[forget], minlength=10))
    # With min_size 20 the histogram is scaled x2.
    h_f2 = select_twin_forget(spec, tiny.labels, tiny.holdout, forget, min_size=20, seed=0)
    assert np.array_equal(np.bincount(tiny.labels[h_f2], minlength=10), 2 * np.bincount(tiny.labels[forget], minlength=10))


# ----------------------------------------------------------------------------- twin model

def _epochs_run(tiny, target, cfg):
    h_f = tiny.holdout[:50]
    calls = []
    model = train_twin_model(tiny.model, tiny.x, tiny.labels, tiny.train, h_f, target, cfg, device=CPU, seed=0,
                             progress=calls.append)
    return model, h_f, calls


def test_twin_model_stops_once_it_reaches_its_target(tiny):
    model, h_f, calls = _epochs_run(tiny, target=0.0, cfg=twin_cfg(max_epochs=5))
    assert calls == pytest.approx([1 / 5])                     # one epoch was enough
    assert model is not tiny.model


def test_twin_model_runs_to_max_epochs_when_the_target_is_out_of_reach(tiny):
    model, h_f, calls = _epochs_run(tiny, target=1.5, cfg=twin_cfg(max_epochs=3))
    assert calls == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_twin_model_fits_the_twin_forget_set_better_than_the_original(tiny):
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    model, h_f, calls = _epochs_run(tiny, target=1.0, cfg=twin_cfg(max_epochs=4, lr=0.02))
    acc = accuracy_on(model, tiny.x, tiny.labels, h_f, CPU)
    assert acc >= 1.0 or len(calls) == 4                       # reached its target or ran out of epochs
    assert acc > accuracy_on(tiny.model, tiny.x, tiny.labels, h_f, CPU)
    assert all(torch.equal(before[k], v) for k, v in tiny.model.state_dict().items())  # M_o untouched


def test_curriculum_model_is_fresh_and_seeded(tiny):
    cfg = twin_cfg(curriculum_epochs=1)
    a = train_curriculum(lambda: tiny.build(1), tiny.x, tiny.labels, tiny.train[:200], cfg, device=CPU, seed=1)
    b = train_curriculum(lambda: tiny.build(1), tiny.x, tiny.labels, tiny.train[:200], cfg, device=CPU, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), tiny.model.parameters()))


# ----------------------------------------------------------------------------- fitted predictor

def test_fit_predictor_rate_is_the_twin_easy_rate():
    rng = np.random.default_rng(0)
    feats = np.r_[rng.normal(0, 1, (45, 3)), rng.normal(2, 1, (15, 3))]
    g = np.r_[np.ones(45, np.int64), np.zeros(15, np.int64)]
    fitted = fit_predictor(feats, g, PredictorConfig(kind="logistic", rule="rate", folds=3, epochs=10, lr=0.01), seed=0)
    assert fitted.easy_rate == pytest.approx(0.75)
    assert fitted.oof_proba.shape == (60,) and fitted.oof_easy.sum() == 45
    proba, easy = fitted.predict(rng.normal(0, 1, (8, 3)))
    assert proba.shape == (8,) and easy.sum() == 6            # round(0.75 * 8)


def test_spread_ratio_is_one_for_the_whole_class_and_small_for_a_cluster():
    # Class 0: four corners of a square (mean distance to centroid sqrt(2)); class 1 elsewhere.
    points = np.array([[0, 0], [2, 0], [0, 2], [2, 2], [10, 10], [11, 10]], dtype=float)
    labels = np.array([0, 0, 0, 0, 1, 1])
    everything = labels == 0
    assert spread_ratio(points, labels, everything) == pytest.approx(1.0)
    # Two neighbouring corners: distance to their centroid 1, over sqrt(2) for the class.
    pair = np.array([True, True, False, False, False, False])
    assert spread_ratio(points, labels, pair) == pytest.approx(1 / np.sqrt(2))
    assert np.isnan(spread_ratio(points, labels, np.array([True, False, False, False, False, False])))
