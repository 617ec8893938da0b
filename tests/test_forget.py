"""Tests for tmu.forget: parsing forget specs once into values, their text form, resolving them
against a split (every error path) and drawing each kind's twin forget set H_f."""

from __future__ import annotations

import numpy as np
import pytest

from tmu.forget import (
    FORGET_KINDS,
    ClassForget,
    ForgetSpec,
    ForgetSpecError,
    IdsForget,
    MislabeledForget,
    RandomForget,
    SubclassForget,
    parse_forget,
    seed_class,
)
from tmu.splits import split_pool

N = 100
# 100 samples, 4 classes: class c holds ids with id % 4 == c (25 each).
LABELS = np.arange(N) % 4
CLASSES = ("cat", "dog", "owl", "fox")
GRAMMAR = "use random:F, subclass:C:F, class:C[,C...], ids:FILE | ids:I,J,..., mislabeled:F"


@pytest.fixture()
def roles():
    return split_pool(N, 0.2, 0.3, seed=0)


def forget(spec, roles, seed=0):
    return parse_forget(spec).resolve(LABELS, roles[0], CLASSES, seed)


# ----------------------------------------------------------------------------- parsing and text
# form


@pytest.mark.parametrize(
    "text,value",
    [
        ("random:0.1", RandomForget(0.1)),
        ("subclass:3:0.3", SubclassForget("3", 0.3)),
        ("subclass:dog:0.25", SubclassForget("dog", 0.25)),
        ("subclass:*:0.3", SubclassForget("*", 0.3)),
        ("class:1,3", ClassForget(("1", "3"))),
        ("class:*", ClassForget(("*",))),
        ("ids:5,2,9", IdsForget((5, 2, 9))),
        ("ids:7", IdsForget((7,))),
        ("mislabeled:0.1", MislabeledForget(0.1)),
    ],
)
def test_parse_gives_the_value_and_str_gives_the_text_back(text, value):
    spec = parse_forget(text)
    assert spec == value and type(spec) is type(value)
    assert str(spec) == text
    assert parse_forget(str(spec)) == spec
    assert parse_forget(spec) is spec  # a parsed spec is passed through


@pytest.mark.parametrize(
    "text,canonical",
    [
        ("random:0.10", "random:0.1"),
        ("class: fox , 1", "class:fox,1"),
        ("ids:5, 2,9", "ids:5,2,9"),
        ("subclass: 3 :.5", "subclass:3:0.5"),
    ],
)
def test_str_is_the_canonical_text(text, canonical):
    assert str(parse_forget(text)) == canonical
    assert parse_forget(canonical) == parse_forget(text)


def test_ids_file_round_trips_through_its_path(tmp_path):
    path = tmp_path / "forget.txt"
    path.write_text("5\n2, 9  11\n\n")  # commas, spaces and new lines all separate ids
    spec = parse_forget(f"ids:{path}")
    assert spec == IdsForget((5, 2, 9, 11), source=str(path))
    assert str(spec) == f"ids:{path}"
    assert parse_forget(str(spec)) == spec


def test_ids_file_is_read_once_at_parse_time(tmp_path, roles):
    ids = roles[0][[0, 4, 9]]
    path = tmp_path / "forget.txt"
    path.write_text("\n".join(map(str, ids[::-1])))
    spec = parse_forget(f"ids:{path}")
    path.unlink()  # gone: the spec already holds the ids
    assert spec.ids == tuple(int(i) for i in ids[::-1])
    assert np.array_equal(spec.resolve(LABELS, roles[0], CLASSES, 0), ids)
    assert spec.describe() == "3 listed samples"


def test_registry_holds_every_kind_under_its_name():
    assert list(FORGET_KINDS) == ["random", "subclass", "class", "ids", "mislabeled"]
    assert FORGET_KINDS == {
        "random": RandomForget,
        "subclass": SubclassForget,
        "class": ClassForget,
        "ids": IdsForget,
        "mislabeled": MislabeledForget,
    }
    assert [k for k, v in FORGET_KINDS.items() if v.relabels] == ["mislabeled"]
    assert all(issubclass(k, ForgetSpec) and k.kind == name for name, k in FORGET_KINDS.items())


def test_specs_are_frozen_hashable_values():
    spec = parse_forget("subclass:3:0.3")
    with pytest.raises(AttributeError):
        spec.fraction = 0.5  # type: ignore[misc]
    assert len({spec, parse_forget("subclass:3:0.3"), parse_forget("subclass:3:0.4")}) == 2


@pytest.mark.parametrize(
    "text,description",
    [
        ("random:0.1", "10% of the training set, at random"),
        ("subclass:3:0.3", "30% of class 3"),
        ("class:4", "class 4"),
        ("class:1,dog", "classes 1, dog"),
        ("ids:3", "1 listed sample"),
        ("ids:3,4", "2 listed samples"),
        ("mislabeled:0.05", "5% of the training set, mislabeled"),
    ],
)
def test_describe(text, description):
    assert parse_forget(text).describe() == description


# ----------------------------------------------------------------------------- the seed class `*`


def test_seed_class_takes_odd_ids_then_even_ones_and_cycles():
    assert [seed_class(s, 10) for s in range(10)] == [1, 3, 5, 7, 9, 0, 2, 4, 6, 8]
    assert seed_class(10, 10) == 1 and seed_class(13, 10) == 7
    assert [seed_class(s, 4) for s in range(4)] == [1, 3, 0, 2]
    assert [seed_class(s, 3) for s in range(3)] == [1, 0, 2]


@pytest.mark.parametrize("seed,cls", [(0, 1), (1, 3), (2, 0), (3, 2), (4, 1)])
def test_star_class_resolves_by_seed(roles, seed, cls):
    train = roles[0]
    assert np.array_equal(forget("class:*", roles, seed), train[LABELS[train] == cls])
    sub = forget("subclass:*:0.4", roles, seed)
    assert len(sub) == round(0.4 * (LABELS[train] == cls).sum()) and set(LABELS[sub]) == {cls}
    assert np.array_equal(sub, forget(f"subclass:{cls}:0.4", roles, seed))


# ----------------------------------------------------------------------------- resolve


def test_random_fraction_size_subset_and_determinism(roles):
    f = forget("random:0.1", roles)
    assert len(f) == 5 and set(f) <= set(roles[0]) and np.all(np.diff(f) > 0)
    assert f.dtype == np.int64
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


# ----------------------------------------------------------------------------- errors when
# resolving


def test_empty_forget_set(roles):
    spec = parse_forget("random:0.001")  # well-formed: only the split makes it empty
    with pytest.raises(ForgetSpecError, match=r"'random:0.001' selects no training sample"):
        spec.resolve(LABELS, roles[0], CLASSES, 0)


def test_whole_training_set(roles):
    with pytest.raises(ForgetSpecError, match="selects the whole training set"):
        forget("class:0,1,2,3", roles)
    with pytest.raises(ForgetSpecError, match="selects the whole training set"):
        forget("ids:" + ",".join(map(str, roles[0])), roles)


def test_unknown_class_id(roles):
    spec = parse_forget("class:7")  # a class id is checked against the dataset's classes
    with pytest.raises(
        ForgetSpecError, match=r"unknown class 7 in forget spec 'class:7'; valid: 0..3"
    ):
        spec.resolve(LABELS, roles[0], CLASSES, 0)
    with pytest.raises(ForgetSpecError, match=r"unknown class -1"):
        forget("subclass:-1:0.5", roles)


def test_unknown_class_name(roles):
    with pytest.raises(
        ForgetSpecError, match=r"unknown class 'cow'.*\['cat', 'dog', 'owl', 'fox'\]"
    ):
        forget("class:cow", roles)


def test_id_out_of_range(roles):
    with pytest.raises(ForgetSpecError, match=r"ids \[100\] are out of range 0..99"):
        forget(f"ids:{roles[0][0]},100", roles)
    with pytest.raises(ForgetSpecError, match=r"'ids:-3': id -3 is out of range"):
        forget("ids:-3", roles)  # refused when parsed, before any split


@pytest.mark.parametrize("role", [1, 2], ids=["holdout", "test"])
def test_id_in_holdout_or_test(roles, role):
    bad = roles[role][0]
    with pytest.raises(ForgetSpecError, match=rf"ids \[{bad}\] are not in the training set"):
        forget(f"ids:{roles[0][0]},{bad}", roles)


# ----------------------------------------------------------------------------- errors when parsing


@pytest.mark.parametrize(
    "fraction,message",
    [
        ("0", "fraction 0.0 .* strictly between 0 and 1"),
        ("1", "fraction 1.0 .* strictly between 0 and 1"),
        ("1.5", "fraction 1.5 .* strictly between 0 and 1"),
        ("nan", "fraction nan .* strictly between 0 and 1"),
        ("abc", "fraction 'abc' .* is not a number"),
    ],
)
@pytest.mark.parametrize("kind", ["random:", "subclass:2:"])
def test_bad_fraction(kind, fraction, message):
    with pytest.raises(ForgetSpecError, match=message):
        parse_forget(kind + fraction)


def test_empty_id_file(tmp_path):
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ForgetSpecError, match=r"id file .*empty\.txt.* holds no id"):
        parse_forget(f"ids:{tmp_path / 'empty.txt'}")


def test_duplicate_ids():
    with pytest.raises(ForgetSpecError, match=r"forget spec 'ids:4,8,4': duplicate ids \[4\]"):
        parse_forget("ids:4,8,4")


def test_duplicate_ids_in_a_file(tmp_path):
    (tmp_path / "dup.txt").write_text("3\n5\n3\n5\n7\n")
    with pytest.raises(ForgetSpecError, match=r"duplicate ids \[3, 5\]"):
        parse_forget(f"ids:{tmp_path / 'dup.txt'}")


def test_non_integer_ids():
    with pytest.raises(ForgetSpecError, match="ids must be integers"):
        parse_forget("ids:1,x")


@pytest.mark.parametrize("huge", [2**63, 2**64 + 5, -(2**63) - 1, 10**30])
def test_an_id_beyond_64_bits_is_out_of_range(huge, tmp_path):
    try:
        parse_forget(f"ids:1,{huge}")
    except ForgetSpecError as err:  # not an OverflowError from numpy
        assert f"id {huge} is out of range" in str(err)
    else:
        pytest.fail("no ForgetSpecError")
    (tmp_path / "huge.txt").write_text(f"1\n{huge}\n")
    with pytest.raises(ForgetSpecError, match=rf"huge.txt.*, line 2: id {huge} is out of range"):
        parse_forget(f"ids:{tmp_path / 'huge.txt'}")
    assert parse_forget(f"ids:1,{2**63 - 1}").ids == (1, 2**63 - 1)  # the largest int64 is fine
    with pytest.raises(ForgetSpecError, match=rf"id {huge} is out of range"):
        IdsForget((1, huge))  # built directly (the dashboard's selection)


def test_an_id_of_thousands_of_digits_is_out_of_range_not_an_int_conversion_error():
    with pytest.raises(
        ForgetSpecError, match=r"id 9{40}\.\.\. \(5000 characters\) is out of range"
    ):
        parse_forget("ids:" + "9" * 5000)


def _ids_file(tmp_path, content: bytes | str) -> str:
    path = tmp_path / "ids.csv"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return f"ids:{path}"


@pytest.mark.parametrize(
    "content, ids",
    [
        ("\ufeff3\n1\n2\n", (3, 1, 2)),  # a UTF-8 byte-order mark (Excel, Notepad)
        ("3\r\n1\r\n", (3, 1)),  # Windows line ends
        ("id\n3\n1\n", (3, 1)),  # a header line
        ("ID,label\n3,cat\n1,dog\n", (3, 1)),  # CSV: the `id` column, whatever its case
        ("label,id,score\n7,3,0.5\n9,1,0.25\n", (3, 1)),  # ... wherever it stands
        ('"name","id"\n"a, b",3\n"c",1\n', (3, 1)),  # quoted fields
        ("label\tid\n7\t3\n9\t1\n", (3, 1)),  # tab separated
        ("id;label\n3;x\n1;y\n", (3, 1)),  # semicolon separated (European spreadsheets)
        ("\n\n5\n\n  2, 9  11\n\n", (5, 2, 9, 11)),  # blank lines and mixed separators
        ("007\n", (7,)),  # leading zeros
    ],
)
def test_id_files_that_parse(tmp_path, content, ids):
    assert parse_forget(_ids_file(tmp_path, content)).ids == ids


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"ids.csv' in forget spec .* holds no id"),
        (b"\xef\xbb\xbf\n \n", r"holds no id"),  # only a BOM and blanks
        (b"id\n", r"holds no id"),  # only a header
        (b"3\n\xff\xfe4\n", r"is not UTF-8 text \(byte 2, line 2: b'\\xff\\xfe4\\n'\)"),
        (b"3\n-4\n", r"line 2: id -4 is out of range"),
        (b"3\nfour\n", r"line 2: ids must be integers .*, not 'four'"),
        (b"3\n1_000\n", r"line 2: ids must be integers .*, not '1_000'"),  # int() takes it
        ("3\n\u0663\n".encode(), r"line 2: ids must be integers .*, not '\u0663'"),  # Arabic 3
        (b"3\n4.0\n", r"ids must be integers .*, not '4.0'"),
        (b"3\n+4\n", r"ids must be integers .*, not '\+4'"),
        (b"name,label\n3,1\n", r"line 1: .*a header line must name exactly one `id` column"),
        (b"id,ID\n3,1\n", r"exactly one `id` column"),
        (b"id,label\n3,cat\n,dog\n", r"line 3: no value in the `id` column"),
        (b"id,label\n3,cat\nx,dog\n", r"line 3: ids must be integers .*, not 'x'"),
        (b"3,7\n4,2\n", r"looks like a table without a header \(line 1: '3,7'\)"),
        (b"3\t7\n4\t2\n", r"looks like a table without a header"),
        (b"3\n4\n3\n", r"duplicate ids \[3\]"),
    ],
)
def test_id_files_that_are_refused_name_the_bad_value(tmp_path, content, message):
    with pytest.raises(ForgetSpecError, match=message):
        parse_forget(_ids_file(tmp_path, content))


def test_a_huge_id_file_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    import tmu.forget

    monkeypatch.setattr(tmu.forget, "MAX_ID_LIST_BYTES", 100)
    spec = _ids_file(tmp_path, "1\n" * 60)
    with pytest.raises(ForgetSpecError, match=r"ids.csv' .* is too large \(101 bytes"):
        parse_forget(spec)  # read at most the limit + 1 bytes
    assert len(parse_forget(_ids_file(tmp_path, "\n".join(map(str, range(30))))).ids) == 30


@pytest.mark.parametrize("body", ["a\x00b", "\ud800", "x" * 5000, "/", "/dev/null/x"], ids=repr)
def test_an_id_file_path_that_cannot_be_opened_is_a_forget_spec_error(body):
    with pytest.raises(ForgetSpecError, match="id file .* (does not exist|cannot be read)"):
        parse_forget(f"ids:{body}")


def test_missing_id_file(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(ForgetSpecError, match=r"id file '.*nope.txt' .* does not exist"):
        parse_forget(f"ids:{missing}")


@pytest.mark.parametrize("spec", ["everything", "randm:0.1", "", "Random:0.1"])
def test_unknown_kind_lists_the_grammar(spec):
    with pytest.raises(ForgetSpecError) as info:
        parse_forget(spec)
    kind = spec.partition(":")[0]
    assert str(info.value) == f"unknown forget spec kind {kind!r} in {spec!r}; {GRAMMAR}"


def test_malformed_subclass():
    with pytest.raises(ForgetSpecError, match="must look like subclass:CLASS:FRACTION"):
        parse_forget("subclass:3")
    with pytest.raises(ForgetSpecError, match="has an empty class name"):
        parse_forget("subclass::0.3")


def test_class_spec_without_a_class():
    with pytest.raises(ForgetSpecError, match=r"names no class"):
        parse_forget("class:")
    with pytest.raises(ForgetSpecError, match=r"has an empty class name"):
        parse_forget("class:1,,2")


def test_forget_spec_error_is_a_value_error():
    assert issubclass(ForgetSpecError, ValueError)


# ----------------------------------------------------------------------------- twin forget sets H_f


def twin(spec, tiny, forget_ids, min_size, seed=0):
    return parse_forget(spec).twin(tiny.labels, tiny.holdout, forget_ids, min_size, seed)


def test_random_twin_is_a_random_part_of_holdout(tiny):
    forget_ids = tiny.train[:30]
    h_f = twin("random:0.05", tiny, forget_ids, min_size=80)
    assert len(h_f) == 80 and set(h_f) <= set(tiny.holdout) and np.all(np.diff(h_f) > 0)
    assert np.array_equal(h_f, twin("random:0.05", tiny, forget_ids, 80))
    assert not np.array_equal(h_f, twin("random:0.05", tiny, forget_ids, 80, seed=1))
    # |D_f| above min_size wins; and never more than H holds.
    assert len(twin("random:0.5", tiny, tiny.train[:120], 80)) == 120
    assert len(twin("random:0.5", tiny, tiny.train[:300], 80)) == 200


@pytest.mark.parametrize("spec", ["class:3", "subclass:3:0.3", "subclass:*:0.3"])
def test_class_and_subclass_twins_are_the_holdout_samples_of_those_classes(tiny, spec):
    forget_ids = tiny.train[tiny.labels[tiny.train] == 3][:10]
    h_f = twin(spec, tiny, forget_ids, min_size=500)
    assert np.array_equal(h_f, tiny.holdout[tiny.labels[tiny.holdout] == 3])


def test_two_class_twin(tiny):
    forget_ids = tiny.train[np.isin(tiny.labels[tiny.train], [1, 7])]
    h_f = twin("class:1,7", tiny, forget_ids, min_size=0)
    assert np.array_equal(h_f, tiny.holdout[np.isin(tiny.labels[tiny.holdout], [1, 7])])


def test_ids_twin_matches_the_class_histogram(tiny):
    # 6 of class 0, 3 of class 5, 1 of class 9.
    of = {c: tiny.train[tiny.labels[tiny.train] == c] for c in (0, 5, 9)}
    forget_ids = np.sort(np.r_[of[0][:6], of[5][:3], of[9][:1]])
    spec = "ids:" + ",".join(map(str, forget_ids))
    hist = np.bincount(tiny.labels[forget_ids], minlength=10)
    h_f = twin(spec, tiny, forget_ids, min_size=0)
    assert set(h_f) <= set(tiny.holdout) and np.all(np.diff(h_f) > 0)
    assert np.array_equal(np.bincount(tiny.labels[h_f], minlength=10), hist)
    # With min_size 20 the histogram is scaled x2.
    h_f2 = twin(spec, tiny, forget_ids, min_size=20)
    assert np.array_equal(np.bincount(tiny.labels[h_f2], minlength=10), 2 * hist)


# ----------------------------------------------------------------------------- mislabeled:F


def test_mislabeled_relabels_exactly_the_forget_set_with_other_classes(roles):
    spec = parse_forget("mislabeled:0.2")
    ids = forget("mislabeled:0.2", roles)
    assert np.array_equal(ids, forget("random:0.2", roles))  # drawn like random:F
    trained = spec.trained_labels(LABELS, ids, 4, seed=0)
    changed = np.flatnonzero(trained != LABELS)
    assert np.array_equal(changed, ids)  # every forget sample, and nothing else, is relabeled
    assert set(trained[ids]) <= set(range(4)) and LABELS[0] == 0  # the input is not mutated
    assert np.array_equal(trained, spec.trained_labels(LABELS, ids, 4, seed=0))
    assert not np.array_equal(trained, spec.trained_labels(LABELS, ids, 4, seed=1))


def test_mislabeled_twin_is_a_mislabeled_random_part_of_holdout(tiny):
    spec = parse_forget("mislabeled:0.1")
    forget_ids = tiny.train[:40]
    h_f = spec.twin(tiny.labels, tiny.holdout, forget_ids, 60, seed=0)
    assert len(h_f) == 60 and set(h_f) <= set(tiny.holdout)
    twin_labels = spec.twin_labels(tiny.labels, h_f, 10, seed=0)
    assert np.array_equal(np.flatnonzero(twin_labels != tiny.labels), h_f)
    # the other kinds leave labels alone
    plain = parse_forget("random:0.1")
    assert plain.twin_labels(tiny.labels, h_f, 10, 0) is tiny.labels
    assert plain.trained_labels(tiny.labels, forget_ids, 10, 0) is tiny.labels


def test_mislabeled_needs_two_classes():
    with pytest.raises(ForgetSpecError, match="needs at least 2 classes"):
        parse_forget("mislabeled:0.5").resolve(np.zeros(10, int), np.arange(10), ("a",), 0)
