"""Tests for tmu.unlearn: common tests over the whole METHODS registry, then each method's
behaviour."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tmu.training import predict
from tmu.unlearn import METHODS, Env, Problem, get_method, random_wrong_labels
from tmu.unlearn.base import stage_env
from tmu.unlearn.tmu import runner_up_labels

CPU = torch.device("cpu")
# Explicit tiny hyper-parameters for every method that trains (SSD does not: no epochs, no lr).
TINY = {
    name: {k: v for k, v in {"epochs": 1, "lr": 0.02}.items() if k in METHODS[name].defaults}
    for name in METHODS
}


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def make_problem(tiny, forget, easy=None, n_retain=300):
    retain = np.setdiff1d(tiny.train, forget)[:n_retain]
    return Problem(tiny.x, tiny.labels, retain, np.asarray(forget), 10, easy)


def easy_for(name, forget):
    """Methods that need the predictor get an alternating easy / hard mask."""
    return (np.arange(len(forget)) % 2 == 0) if METHODS[name].needs_predictor else None


def run(name, tiny, forget, seed=0, **params):
    method = get_method(name, **{**TINY[name], **params})
    problem = make_problem(tiny, forget, easy_for(name, forget))
    return method.unlearn(tiny.model, problem, Env(CPU, seed, lambda: tiny.build()))


@pytest.fixture(scope="module")
def forget(tiny):
    return np.sort(np.random.default_rng(1).choice(tiny.train, 30, replace=False))


# ----------------------------------------------------------------------------- common tests


@pytest.mark.parametrize("name", sorted(METHODS))
def test_returns_a_new_model_of_the_same_architecture_on_cpu(name, tiny, forget):
    out = run(name, tiny, forget)
    assert out is not tiny.model and type(out) is type(tiny.model)
    ref = tiny.model.state_dict()
    assert {k: v.shape for k, v in out.state_dict().items()} == {k: v.shape for k, v in ref.items()}
    assert all(p.device.type == "cpu" for p in out.parameters())
    assert not out.training
    assert not same(state(out), state(tiny.model))  # it did train


@pytest.mark.parametrize("name", sorted(METHODS))
def test_original_model_is_left_unchanged(name, tiny, forget):
    before = state(tiny.model)
    run(name, tiny, forget)
    assert same(state(tiny.model), before)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_deterministic_under_a_seed(name, tiny, forget):
    a, b = run(name, tiny, forget, seed=5), run(name, tiny, forget, seed=5)
    assert same(state(a), state(b))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_one_sample_forget_set(name, tiny):
    out = run(name, tiny, tiny.train[:1])
    probs = predict(out, tiny.x, tiny.train[:1], device=CPU)
    assert probs.shape == (1, 10) and np.isfinite(probs).all()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_forget_set_of_a_single_class(name, tiny):
    cls3 = tiny.train[tiny.labels[tiny.train] == 3]
    out = run(name, tiny, cls3)
    assert np.isfinite(predict(out, tiny.x, cls3, device=CPU)).all()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_progress_is_reported_up_to_one(name, tiny, forget):
    seen = []
    method = get_method(name, **TINY[name])
    problem = make_problem(tiny, forget, easy_for(name, forget))
    method.unlearn(tiny.model, problem, Env(CPU, 0, tiny.build, seen.append))
    assert seen and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_unknown_hyper_parameter(name):
    with pytest.raises(
        ValueError, match=rf"unknown hyper-parameter\(s\) \['bogus'\] for method '{name}'"
    ):
        get_method(name, bogus=1)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_registry_entries_are_documented(name):
    cls = METHODS[name]
    assert cls.name == name and cls.description and cls.defaults
    # The twin-tuning grid (a dict of value lists, or a list of points) names only real
    # hyper-parameters.
    points = cls.grid if isinstance(cls.grid, list) else [{k: v[0] for k, v in cls.grid.items()}]
    for point in points:
        assert set(point) <= set(cls.defaults)
        assert get_method(name, **point).params == {**cls.defaults, **point}


def test_unknown_method():
    with pytest.raises(ValueError, match=r"unknown method 'scrubz'; valid methods: \["):
        get_method("scrubz")


# ----------------------------------------------------------------------------- TMU


def test_tmu_requires_the_easy_mask(tiny, forget):
    with pytest.raises(
        ValueError, match=r"method 'tmu' needs the predicted easy mask \(problem.easy\)"
    ):
        get_method("tmu", **TINY["tmu"]).unlearn(
            tiny.model, make_problem(tiny, forget), Env(CPU, 0, tiny.build)
        )


def test_tmu_unknown_hard_label(tiny, forget):
    with pytest.raises(ValueError, match=r"unknown hard_label 'nearest'"):
        run("tmu", tiny, forget, hard_label="nearest")


@pytest.mark.parametrize("hard_label", ["random", "runner_up"])
@pytest.mark.parametrize("all_easy", [True, False])
def test_tmu_with_no_hard_or_no_easy_sample(tiny, forget, hard_label, all_easy):
    problem = make_problem(tiny, forget, np.full(len(forget), all_easy))
    method = get_method("tmu", **TINY["tmu"], hard_label=hard_label)
    out = method.unlearn(tiny.model, problem, Env(CPU, 0, tiny.build))
    assert np.isfinite(predict(out, tiny.x, forget, device=CPU)).all()


def test_tmu_flips_predicted_hard_samples_more_than_predicted_easy(tiny):
    # 60 forget samples the original gets right, 6 of them predicted hard (hard samples are rare).
    predicted = predict(tiny.model, tiny.x, tiny.train, device=CPU).argmax(1)
    right = tiny.train[predicted == tiny.labels[tiny.train]]
    forget = np.sort(np.random.default_rng(2).choice(right, 60, replace=False))
    easy = np.ones(60, bool)
    easy[np.random.default_rng(3).choice(60, 6, replace=False)] = False
    problem = Problem(tiny.x, tiny.labels, np.setdiff1d(tiny.train, forget), forget, 10, easy)
    params = {
        "epochs": 4,
        "lr": 0.02,
        "sigma": 0.1,
        "oversample": 10,
        "retain_ratio": 2.0,
        "hard_label": "runner_up",
    }
    out = get_method("tmu", **params).unlearn(tiny.model, problem, Env(CPU, 0, tiny.build))
    wrong = predict(out, tiny.x, forget, device=CPU).argmax(1) != tiny.labels[forget]
    assert wrong[~easy].mean() >= 0.8  # predicted-hard samples flipped
    assert wrong[easy].mean() <= 0.3  # predicted-easy samples mostly stay right
    assert wrong[~easy].mean() > wrong[easy].mean() + 0.4


def test_tmu_flips_report_what_it_trains_towards_another_label(tiny, forget):
    easy = np.arange(len(forget)) % 3 != 0
    problem = make_problem(tiny, forget, easy)
    env = Env(CPU, 0, tiny.build)
    mask, targets = get_method("tmu", oversample=4).flips(tiny.model, problem, env)
    assert np.array_equal(mask, ~easy)  # the predicted-hard samples
    probs = predict(tiny.model, tiny.x, forget, device=CPU)
    assert np.array_equal(targets, runner_up_labels(probs, tiny.labels[forget]))
    # oversample 0 trains no predicted-hard sample: nothing is flipped.
    assert not get_method("tmu", oversample=0).flips(tiny.model, problem, env)[0].any()
    # A control's flip labels replace the method's own, in the flips and in the training.
    given = (tiny.labels[forget] + 5) % 10
    controlled = dataclasses.replace(problem, flip_labels=given)
    tmu = get_method("tmu", epochs=8, oversample=10, lr=0.05, retain_ratio=2.0)
    assert np.array_equal(tmu.flips(tiny.model, controlled, env)[1], given)
    on_given = [
        predict(tmu.unlearn(tiny.model, p, env), tiny.x, forget, device=CPU).argmax(1) == given
        for p in (controlled, problem)
    ]
    hard_landed, easy_landed = on_given[0][~easy].mean(), on_given[0][easy].mean()
    assert hard_landed >= 0.6 and hard_landed - easy_landed >= 0.4
    assert on_given[1][~easy].mean() <= 0.2  # its own runner-up labels are other classes
    assert get_method("finetune").flips(tiny.model, problem, env) is None


def test_runner_up_labels_hand_case():
    probs = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    # row 0, true 0: best other class is 1; row 1, true 1: the argmax 0 is already wrong -> 0;
    # row 2, true 2: tie between 0 and 1 -> the first, 0.
    assert runner_up_labels(probs, np.array([0, 1, 2])).tolist() == [1, 0, 0]
    assert probs[0, 0] == 0.5  # input not modified


def test_random_wrong_labels_never_equal_the_true_label_and_cover_the_others():
    labels = np.repeat(np.arange(5), 400)
    wrong = random_wrong_labels(labels, 5, np.random.default_rng(0))
    assert wrong.shape == labels.shape and (wrong != labels).all()
    assert ((wrong >= 0) & (wrong < 5)).all()
    for c in range(5):  # uniform over the 4 other classes: about 100 each
        counts = np.bincount(wrong[labels == c], minlength=5)
        assert counts[c] == 0 and (counts[np.arange(5) != c] > 60).all()


# ----------------------------------------------------------------------------- baselines' behaviour


def _acc(model, tiny, ids):
    return float((predict(model, tiny.x, ids, device=CPU).argmax(1) == tiny.labels[ids]).mean())


def test_random_label_lowers_forget_accuracy(tiny, forget):
    out = run("random_label", tiny, forget, epochs=5, lr=0.05)
    assert _acc(out, tiny, forget) < _acc(tiny.model, tiny, forget) - 0.1


def test_neggrad_plus_lowers_forget_accuracy_more_than_finetune(tiny, forget):
    ng = run("neggrad_plus", tiny, forget, epochs=2, lr=0.02, alpha=1.0)
    ft = run("finetune", tiny, forget, epochs=2, lr=0.02)
    assert _acc(ng, tiny, forget) < _acc(ft, tiny, forget)


def test_retrain_never_reads_the_original(tiny, forget):
    # Retraining from scratch: the result does not depend on the original's weights.
    problem = make_problem(tiny, forget)
    env = Env(CPU, 0, lambda: tiny.build())
    a = get_method("retrain", **TINY["retrain"]).unlearn(tiny.model, problem, env)
    b = get_method("retrain", **TINY["retrain"]).unlearn(tiny.build(seed=99), problem, env)
    assert same(state(a), state(b))


def test_stage_env_reports_stage_k_of_n():
    seen = []
    env = Env(CPU, 3, lambda: None, seen.append)
    second = stage_env(env, 1, 4)
    assert (second.device, second.seed, second.build) == (env.device, env.seed, env.build)
    for frac in (0.0, 0.5, 1.0):
        second.progress(frac)
    stage_env(env, 3, 4).progress(1.0)
    assert seen == pytest.approx([0.25, 0.375, 0.5, 1.0])
    quiet = Env(CPU, 0, lambda: None)
    assert stage_env(quiet, 1, 2) is quiet  # nobody listens: nothing to wrap


def test_neighbour_labels_vote_among_the_nearest_retained_samples_leaving_the_given_one_out():
    from tmu.unlearn.flips import neighbour_labels

    retain = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [-1.0, 0.0]])
    labels = np.array([3, 3, 5, 5, 7])
    forget = np.array([[1.0, 0.05], [0.05, 1.0], [1.0, 0.0]])
    given = np.array([8, 8, 3])
    got = neighbour_labels(forget, retain, labels, given, 10, k=2)
    # near class 3 -> 3; near class 5 -> 5; given 3 itself: its 2 neighbours are all 3 -> none
    assert got.tolist() == [3, 5, -1]
    assert neighbour_labels(forget, retain, labels, given, 10, k=4).tolist()[2] == 5


def test_the_neighbours_policy_falls_back_to_the_runner_up_and_never_gives_the_label(tiny, forget):
    from tmu.unlearn.flips import FLIP_LABELS

    problem = make_problem(tiny, forget, np.zeros(len(forget), bool))
    env = Env(CPU, 0, tiny.build)
    for name, policy in FLIP_LABELS.items():
        flips = policy(tiny.model, problem, env)
        assert flips.shape == (len(forget),) and (flips != tiny.labels[forget]).all(), name
    tmu = get_method("tmu", hard_label="twin")
    chosen = dataclasses.replace(problem, flip_policy="neighbours")
    assert np.array_equal(
        tmu.flip_targets(tiny.model, chosen, env),
        FLIP_LABELS["neighbours"](tiny.model, problem, env),
    )
    assert np.array_equal(  # no policy from the twin: the runner-up
        tmu.flip_targets(tiny.model, problem, env),
        FLIP_LABELS["runner_up"](tiny.model, problem, env),
    )
