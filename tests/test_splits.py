"""Tests for tmu.splits: D / H / T by seed, then the five data roles of a forget spec (the specs
themselves, and their every error path, are tested in test_forget.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tmu import forget as forget_module
from tmu.forget import ClassForget, parse_forget
from tmu.splits import ForgetSpecError, Splits, make_splits, noisy_labels, request, split_pool

N = 100
# 100 samples, 4 classes: class c holds ids with id % 4 == c (25 each).
LABELS = np.arange(N) % 4
CLASSES = ("cat", "dog", "owl", "fox")


@pytest.fixture()
def roles():
    return split_pool(N, 0.2, 0.3, seed=0)


# ----------------------------------------------------------------------------- split_pool


def test_split_pool_sizes_disjoint_and_cover_the_pool(roles):
    train, hold, test = roles
    assert (len(train), len(hold), len(test)) == (50, 20, 30)
    assert not set(train) & set(hold) and not set(train) & set(test) and not set(hold) & set(test)
    assert np.array_equal(np.sort(np.concatenate(roles)), np.arange(N))
    for ids in roles:
        assert ids.dtype == np.int64 and np.all(np.diff(ids) > 0)  # sorted, unique


def test_split_pool_is_deterministic_per_seed():
    a, b = split_pool(N, 0.2, 0.3, seed=5), split_pool(N, 0.2, 0.3, seed=5)
    c = split_pool(N, 0.2, 0.3, seed=6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_split_pool_with_official_test_keeps_it_and_draws_holdout_from_the_rest():
    official = np.arange(80, 100)
    train, hold, test = split_pool(N, 0.25, 0.5, seed=0, official_test=official[::-1])
    assert np.array_equal(test, official)  # sorted, and the `test` fraction is ignored
    assert len(hold) == 20 and len(train) == 60  # 25 % of the 80 remaining ids
    assert np.array_equal(np.sort(np.concatenate([train, hold])), np.arange(80))


@pytest.mark.parametrize("holdout,test", [(0.0, 0.2), (1.0, 0.0), (0.5, 0.5), (0.2, -0.1)])
def test_split_pool_rejects_impossible_fractions(holdout, test):
    with pytest.raises(ValueError, match="must be fractions summing below 1"):
        split_pool(N, holdout, test, seed=0)


# ----------------------------------------------------------------------------- make_splits


def test_make_splits_roles_are_consistent(roles):
    s = make_splits(LABELS, "class:2", holdout=0.2, test=0.3, seed=0, classes=CLASSES)
    assert isinstance(s, Splits)
    assert np.array_equal(s.train, roles[0]) and np.array_equal(s.holdout, roles[1])
    assert np.array_equal(s.test, roles[2])
    assert np.array_equal(np.union1d(s.forget, s.retain), s.train)
    assert not set(s.forget) & set(s.retain)
    assert np.all(LABELS[s.forget] == 2) and not np.any(LABELS[s.retain] == 2)
    assert len(s.forget) == (LABELS[roles[0]] == 2).sum()
    assert set(s.as_dict()) == {"train", "holdout", "test", "forget", "retain"}


@pytest.mark.parametrize("text", ["class:owl", "subclass:*:0.4", "random:0.2"])
def test_make_splits_takes_a_spec_or_its_text(text):
    kw = dict(holdout=0.2, test=0.3, seed=3, classes=CLASSES)
    a, b = make_splits(LABELS, text, **kw), make_splits(LABELS, parse_forget(text), **kw)
    assert all(np.array_equal(a.as_dict()[k], b.as_dict()[k]) for k in a.as_dict())
    assert np.array_equal(a.forget, parse_forget(text).resolve(LABELS, a.train, CLASSES, 3))


def test_make_splits_with_an_official_test_set():
    s = make_splits(
        LABELS,
        ClassForget(("0",)),
        holdout=0.25,
        test=0.5,
        seed=0,
        classes=CLASSES,
        official_test=np.arange(80, 100),
    )
    assert (
        np.array_equal(s.test, np.arange(80, 100)) and len(s.holdout) == 20 and len(s.train) == 60
    )
    assert np.array_equal(s.forget, s.train[LABELS[s.train] == 0])


@pytest.mark.parametrize(
    "text,message",
    [
        ("class:9", "unknown class 9"),
        ("random:0.001", "selects no"),
        ("random:2", "strictly between 0 and 1"),
        ("nope:1", "unknown forget"),
    ],
)
def test_make_splits_raises_the_forget_spec_error(text, message):
    with pytest.raises(ForgetSpecError, match=message):
        make_splits(LABELS, text, holdout=0.2, test=0.3, seed=0, classes=CLASSES)


def test_forget_spec_error_is_still_importable_from_splits():
    assert ForgetSpecError is forget_module.ForgetSpecError and issubclass(
        ForgetSpecError, ValueError
    )


# ----------------------------------------------------------------------------- label noise


def test_label_noise_relabels_the_same_fraction_of_d_and_h_and_never_t(roles):
    train, hold, test = roles
    noisy = noisy_labels(LABELS, train, hold, 0.2, seed=3, k=4)
    changed = np.flatnonzero(noisy != LABELS)
    # Exactly round(0.2 * n) of D (50) and of H (20), each to another class; T untouched.
    assert len(np.intersect1d(changed, train)) == 10 and len(np.intersect1d(changed, hold)) == 4
    assert not np.intersect1d(changed, test).size and len(changed) == 14
    assert ((noisy >= 0) & (noisy < 4)).all()
    assert np.array_equal(noisy_labels(LABELS, train, hold, 0.2, seed=3, k=4), noisy)  # seeded
    assert not np.array_equal(noisy_labels(LABELS, train, hold, 0.2, seed=4, k=4), noisy)
    assert noisy_labels(LABELS, train, hold, 0.0, seed=3, k=4) is LABELS  # no copy at rate 0


def test_a_request_under_label_noise_resolves_the_forget_set_against_the_given_labels():
    kw = dict(holdout=0.2, test=0.3, seed=1, classes=CLASSES, label_noise=0.3)
    s, labels = request(LABELS, "class:owl", **kw)
    assert (labels[s.forget] == 2).all()  # the samples *labelled* owl, noisy ones included
    assert s.forget.tolist() == s.train[labels[s.train] == 2].tolist()
    assert (LABELS[s.forget] != 2).any()  # some of them are not owls
    # make_splits gives the same roles; without noise the labels are the pool's own.
    assert np.array_equal(make_splits(LABELS, "class:owl", **kw).forget, s.forget)
    clean, same = request(LABELS, "class:owl", **{**kw, "label_noise": 0.0})
    assert np.array_equal(same, LABELS) and (LABELS[clean.forget] == 2).all()


def test_a_mislabeled_request_relabels_on_top_of_label_noise():
    kw = dict(holdout=0.2, test=0.3, seed=2, classes=CLASSES)
    s, labels = request(LABELS, "mislabeled:0.2", **kw, label_noise=0.2)
    noisy = noisy_labels(LABELS, s.train, s.holdout, 0.2, seed=2, k=4)
    assert (labels[s.forget] != noisy[s.forget]).all()  # D_f relabelled once more
    rest = np.setdiff1d(np.arange(N), s.forget)
    assert np.array_equal(labels[rest], noisy[rest])
