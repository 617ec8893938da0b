"""Tests for tmu.splits: D / H / T by seed, forget specs and their every error path."""
from __future__ import annotations

import numpy as np
import pytest

from tmu.splits import ForgetSpecError, Splits, make_splits, resolve_forget, split_pool

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
    a, b, c = split_pool(N, 0.2, 0.3, seed=5), split_pool(N, 0.2, 0.3, seed=5), split_pool(N, 0.2, 0.3, seed=6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_split_pool_with_official_test_keeps_it_and_draws_holdout_from_the_rest():
    official = np.arange(80, 100)
    train, hold, test = split_pool(N, 0.25, 0.5, seed=0, official_test=official[::-1])
    assert np.array_equal(test, official)          # sorted, and the `test` fraction is ignored
    assert len(hold) == 20 and len(train) == 60    # 25 % of the 80 remaining ids
    assert np.array_equal(np.sort(np.concatenate([train, hold])), np.arange(80))


@pytest.mark.parametrize("holdout,test", [(0.0, 0.2), (1.0, 0.0), (0.5, 0.5), (0.2, -0.1)])
def test_split_pool_rejects_impossible_fractions(holdout, test):
    with pytest.raises(ValueError, match="must be fractions summing below 1"):
        split_pool(N, holdout, test, seed=0)


# ----------------------------------------------------------------------------- forget specs

def forget(spec, roles, seed=0):
    return resolve_forget(spec, LABELS, roles[0], CLASSES, seed)


def test_random_fraction_size_subset_and_determinism(roles):
    f = forget("random:0.1", roles)
    assert len(f) == 5 and set(f) <= set(roles[0]) and np.all(np.diff(f) > 0)
    assert np.array_equal(f, forget("random:0.1", roles))
    assert not np.array_equal(f, forget("random:0.1", roles, seed=1))


def test_subclass_takes_a_fraction_of_one_class(roles):
    train = roles[0]
    members = train[LABELS[train] == 1]
    f = forget("subclass:1:0.5", roles)
    assert len(f) == round(0.5 * len(members))
    assert set(f) <= set(members)


def test_class_by_id_and_by_name_are_the_same(roles):
    train = roles[0]
    f = forget("class:1,3", roles)
    assert np.array_equal(f, train[np.isin(LABELS[train], [1, 3])])
    assert np.array_equal(forget("class:dog,fox", roles), f)
    assert np.array_equal(forget("class: fox , 1", roles), f)
    assert np.array_equal(forget("subclass:dog:0.5", roles), forget("subclass:1:0.5", roles))


def test_ids_inline_list(roles):
    i, j = roles[0][[3, 7]]
    assert np.array_equal(forget(f"ids:{j},{i}", roles), np.array([i, j]))
    assert np.array_equal(forget(f"ids:{i}", roles), np.array([i]))


def test_ids_file(roles, tmp_path):
    ids = roles[0][[0, 4, 9]]
    path = tmp_path / "forget.txt"
    path.write_text("\n".join(str(i) for i in ids[::-1]) + "\n")
    assert np.array_equal(forget(f"ids:{path}", roles), ids)


def test_make_splits_roles_are_consistent(roles):
    s = make_splits(LABELS, "class:2", holdout=0.2, test=0.3, seed=0, classes=CLASSES)
    assert isinstance(s, Splits)
    assert np.array_equal(s.train, roles[0]) and np.array_equal(s.holdout, roles[1])
    assert np.array_equal(np.union1d(s.forget, s.retain), s.train)
    assert not set(s.forget) & set(s.retain)
    assert np.all(LABELS[s.forget] == 2) and not np.any(LABELS[s.retain] == 2)
    assert set(s.as_dict()) == {"train", "holdout", "test", "forget", "retain"}


# ----------------------------------------------------------------------------- forget spec errors

def test_empty_forget_set(roles):
    with pytest.raises(ForgetSpecError, match=r"'random:0.001' selects no training sample"):
        forget("random:0.001", roles)


def test_empty_id_file(roles, tmp_path):
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ForgetSpecError, match="selects no training sample"):
        forget(f"ids:{tmp_path / 'empty.txt'}", roles)


def test_whole_training_set(roles):
    with pytest.raises(ForgetSpecError, match="selects the whole training set"):
        forget("class:0,1,2,3", roles)
    with pytest.raises(ForgetSpecError, match="selects the whole training set"):
        forget("ids:" + ",".join(map(str, roles[0])), roles)


def test_unknown_class_id(roles):
    with pytest.raises(ForgetSpecError, match=r"unknown class 7 in forget spec 'class:7'"):
        forget("class:7", roles)
    with pytest.raises(ForgetSpecError, match=r"unknown class -1"):
        forget("subclass:-1:0.5", roles)


def test_unknown_class_name(roles):
    with pytest.raises(ForgetSpecError, match=r"unknown class 'cow'"):
        forget("class:cow", roles)
    with pytest.raises(ForgetSpecError, match=r"names no class"):
        forget("class:", roles)


def test_id_out_of_range(roles):
    with pytest.raises(ForgetSpecError, match=r"ids \[100\] are out of range 0..99"):
        forget(f"ids:{roles[0][0]},100", roles)
    with pytest.raises(ForgetSpecError, match=r"ids \[-3\] are out of range"):
        forget("ids:-3", roles)


@pytest.mark.parametrize("role", [1, 2], ids=["holdout", "test"])
def test_id_in_holdout_or_test(roles, role):
    bad = roles[role][0]
    with pytest.raises(ForgetSpecError, match=rf"ids \[{bad}\] are not in the training set"):
        forget(f"ids:{roles[0][0]},{bad}", roles)


@pytest.mark.parametrize("fraction,message", [
    ("0", "fraction 0.0 .* strictly between 0 and 1"),
    ("1", "fraction 1.0 .* strictly between 0 and 1"),
    ("1.5", "fraction 1.5 .* strictly between 0 and 1"),
    ("abc", "fraction 'abc' .* is not a number"),
])
@pytest.mark.parametrize("kind", ["random:", "subclass:2:"])
def test_bad_fraction(roles, kind, fraction, message):
    with pytest.raises(ForgetSpecError, match=message):
        forget(kind + fraction, roles)


def test_duplicate_ids(roles):
    i = roles[0][0]
    with pytest.raises(ForgetSpecError, match=rf"duplicate ids \[{i}\]"):
        forget(f"ids:{i},{roles[0][1]},{i}", roles)


def test_non_integer_ids(roles):
    with pytest.raises(ForgetSpecError, match="ids must be integers"):
        forget("ids:1,x", roles)


def test_missing_id_file(roles, tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(ForgetSpecError, match=r"id file '.*nope.txt' .* does not exist"):
        forget(f"ids:{missing}", roles)


@pytest.mark.parametrize("spec", ["everything", "randm:0.1", ""])
def test_unknown_kind(roles, spec):
    with pytest.raises(ForgetSpecError, match="unknown forget spec kind"):
        forget(spec, roles)


def test_malformed_subclass(roles):
    with pytest.raises(ForgetSpecError, match="must look like subclass:CLASS:FRACTION"):
        forget("subclass:3", roles)


def test_forget_spec_error_is_a_value_error():
    assert issubclass(ForgetSpecError, ValueError)
