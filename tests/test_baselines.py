"""Behaviour of the literature baselines built on the shared loop (Boundary Shrink, l1-sparse,
SCRUB, SalUn, Bad Teacher). Their interface (new model, original untouched, seeded, edge-case
forget sets, progress) is covered by the registry-wide tests in test_unlearn.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tmu.training import predict
from tmu.unlearn import Env, Problem, get_method
from tmu.unlearn.boundary_shrink import nearest_wrong_labels
from tmu.unlearn.salun import saliency_mask
from tmu.unlearn.tmu import runner_up_labels

CPU = torch.device("cpu")


def make_problem(tiny, forget, n_retain=300):
    retain = np.setdiff1d(tiny.train, forget)[:n_retain]
    return Problem(tiny.x, tiny.labels, retain, np.asarray(forget), 10)


def run(name, tiny, forget, **params):
    return get_method(name, **params).unlearn(
        tiny.model, make_problem(tiny, forget), Env(CPU, 0, tiny.build)
    )


@pytest.fixture(scope="module")
def forget(tiny):
    return np.sort(np.random.default_rng(1).choice(tiny.train, 30, replace=False))


@pytest.fixture(scope="module")
def cls3(tiny):
    """The whole of class 3 in the training ids: a forget set the retain set cannot explain away."""
    return tiny.train[tiny.labels[tiny.train] == 3]


def _acc(model, tiny, ids):
    return float((predict(model, tiny.x, ids, device=CPU).argmax(1) == tiny.labels[ids]).mean())


def _ce(model, tiny, ids):
    probs = torch.as_tensor(predict(model, tiny.x, ids, device=CPU)).clamp_min(1e-12)
    return float(torch.nn.functional.nll_loss(probs.log(), torch.as_tensor(tiny.labels[ids])))


def _kl_to_original(model, tiny, ids):
    """Mean KL(original || model) of the softmax outputs on `ids`."""
    p, q = (
        torch.as_tensor(predict(m, tiny.x, ids, device=CPU)).clamp_min(1e-12)
        for m in (tiny.model, model)
    )
    return float((p * (p.log() - q.log())).sum(1).mean())


def test_nearest_wrong_labels_without_perturbation_are_the_runner_up_class(tiny, forget):
    # eps = 0: no attack, so the nearest wrong class is the clean logits' best wrong class.
    got = nearest_wrong_labels(tiny.model, tiny.x, forget, tiny.labels[forget], 0.0, device=CPU)
    want = runner_up_labels(predict(tiny.model, tiny.x, forget, device=CPU), tiny.labels[forget])
    assert got.tolist() == want.tolist()
    attacked = nearest_wrong_labels(
        tiny.model, tiny.x, forget, tiny.labels[forget], 0.1, device=CPU
    )
    assert (attacked != tiny.labels[forget]).all() and attacked.dtype.kind == "i"


def test_boundary_shrink_moves_forget_predictions_to_their_nearest_wrong_classes(tiny, cls3):
    out = run("boundary_shrink", tiny, cls3, epochs=2, lr=0.01)
    pred = predict(out, tiny.x, cls3, device=CPU).argmax(1)
    nearest = nearest_wrong_labels(tiny.model, tiny.x, cls3, tiny.labels[cls3], 0.1, device=CPU)
    assert (pred != 3).mean() >= 0.8 and (pred == nearest).mean() >= 0.5
    others = tiny.test[tiny.labels[tiny.test] != 3]
    assert (
        _acc(out, tiny, others) > _acc(tiny.model, tiny, others) - 0.1
    )  # the retain draw keeps accuracy


def test_l1_sparse_shrinks_the_weights_more_than_finetune(tiny, forget):
    def l1(model):
        return float(sum(p.detach().abs().sum() for p in model.parameters()))

    ft = run("finetune", tiny, forget, epochs=2, lr=0.02)
    sparse = run("l1_sparse", tiny, forget, epochs=2, lr=0.02, gamma=2e-3)
    assert l1(sparse) < 0.98 * l1(ft)  # finetune alone moves it by ~0.1 %


def test_scrub_stays_close_to_the_original_on_retain_and_moves_away_on_forget(tiny, cls3):
    out = run("scrub", tiny, cls3, epochs=3, lr=0.01, max_epochs=2)
    problem = make_problem(tiny, cls3)
    kl_f, kl_r = _kl_to_original(out, tiny, cls3), _kl_to_original(out, tiny, problem.retain)
    # With the paper's weights (CE 0.99, KL 0.001) the min-steps are mostly retain fine-tuning:
    # retain accuracy holds (here it rises), while the max-steps push D_f far from the teacher.
    retain_acc, original_acc = (
        _acc(out, tiny, problem.retain),
        _acc(tiny.model, tiny, problem.retain),
    )
    assert retain_acc >= original_acc - 0.02 and kl_f > 20 * kl_r and _acc(out, tiny, cls3) < 0.5


def test_salun_changes_only_the_salient_weights(tiny, forget):
    problem, env = make_problem(tiny, forget), Env(CPU, 0, tiny.build)
    mask = saliency_mask(tiny.model, problem, env, 0.2)
    total = sum(m.numel() for m in mask)
    assert sum(int(m.sum()) for m in mask) == round(0.2 * total)
    out = run("salun", tiny, forget, epochs=1, lr=0.02, mask_ratio=0.2)
    moved = [a != b for a, b in zip(out.parameters(), tiny.model.parameters())]
    assert not any(bool((d & (m == 0)).any()) for d, m in zip(moved, mask))
    assert sum(int(d.sum()) for d in moved) > 0.5 * round(0.2 * total)


@pytest.mark.parametrize("ratio", [0.0, 1.5])
def test_salun_rejects_a_mask_ratio_outside_0_1(tiny, forget, ratio):
    with pytest.raises(ValueError, match=rf"mask_ratio must lie in \(0, 1\], got {ratio}"):
        run("salun", tiny, forget, mask_ratio=ratio)


def test_bad_teacher_raises_forget_loss_more_than_retain_loss(tiny, cls3):
    out = run("bad_teacher", tiny, cls3, epochs=2, lr=0.01)
    retain = make_problem(tiny, cls3).retain
    rise_f = _ce(out, tiny, cls3) - _ce(tiny.model, tiny, cls3)
    rise_r = _ce(out, tiny, retain) - _ce(tiny.model, tiny, retain)
    assert rise_f > 1.0 and rise_r < 0.3
