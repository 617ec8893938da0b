"""Tests for tmu.tuning: the grid a user's own values leave, and the choice of the best trial
(no "do nothing" by a tie). Twin-tuning inside a real run is tested in test_pipeline.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tmu.tuning import choose_trial, free_points, grid_points, is_inert, tie_tolerance, twin_tune
from tmu.unlearn import METHODS, Env, Problem

CPU = torch.device("cpu")


def trial(score, **params):
    return {"params": params, "score": score}


def test_free_points_drop_the_users_keys_and_duplicates():
    grid = {"epochs": [1, 2], "lr": [0.01, 0.04]}
    assert free_points(grid, {}) == grid_points(grid)
    assert free_points(grid, {"epochs": 5}) == [{"lr": 0.01}, {"lr": 0.04}]
    assert free_points(grid, {"epochs": 5, "lr": 0.1}) == [{}]
    tmu = METHODS["tmu"].grid
    assert free_points(tmu, {"oversample": 10}) == [{}]
    assert free_points(tmu, {"sigma": 0.2}) == tmu


def test_a_tie_never_goes_to_the_inert_point():
    inert = {"oversample": 0}
    tied = [trial(0.5, oversample=0), trial(0.5, oversample=4), trial(0.5, oversample=10)]
    assert choose_trial(tied, inert, 0.0)["params"] == {"oversample": 4}
    # Within the tolerance is a tie too; outside it the better score wins, inert or not.
    close = [trial(0.500, oversample=0), trial(0.502, oversample=4)]
    assert choose_trial(close, inert, 0.005)["params"] == {"oversample": 4}
    assert choose_trial(close, inert, 0.001)["params"] == {"oversample": 0}
    better = [trial(0.1, oversample=0), trial(0.4, oversample=4)]
    assert choose_trial(better, inert, 0.01)["params"] == {"oversample": 0}
    # A method without an inert point keeps the grid's order among ties.
    assert choose_trial(tied, {}, 0.0)["params"] == {"oversample": 0}
    assert is_inert({"oversample": 0, "lr": 1.0}, inert) and not is_inert({}, {})


def test_tie_tolerance_is_half_a_twin_sample():
    assert tie_tolerance(500) == pytest.approx(0.001) and tie_tolerance(0) == 0.5


def test_twin_tune_keeps_the_users_value_and_varies_only_the_rest(tiny):
    forget = tiny.holdout[:40]
    easy = np.arange(40) % 4 != 0
    problem = Problem(tiny.x, tiny.labels, tiny.train, forget, 10, easy)
    gold = np.eye(10)[tiny.labels[forget]]  # a twin gold that gets every sample right
    env = Env(CPU, 0, tiny.build)
    base = {"oversample": 10, "epochs": 1}
    params, trials = twin_tune("tmu", base, METHODS["tmu"].grid, tiny.model, problem, gold, env)
    assert params == base and [t["params"] for t in trials] == [base]
    assert {"delta_forget", "agreement_forget", "retain_acc", "score"} <= set(trials[0])
