"""Property-based tests (hypothesis) of everything a user types or uploads: forget specs, id
lists, config dicts and `--set` overrides. Whatever the input, the answer is a value or a
ValueError subclass naming the bad value (the CLI prints it as `error: ...`, the dashboard as a
message), never another exception (a traceback for the user).

Each property is kept small (at most 200 examples, no example database written to disk) so
that the file runs in seconds.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tmu.cli import parse_overrides
from tmu.config import ConfigError, RunConfig, from_dict
from tmu.forget import FORGET_KINDS, MAX_ID, ForgetSpecError, parse_forget, parse_id_tokens

FAST = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# ----------------------------------------------------------------------------- forget specs

NUMBERISH = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["0.5", "1e-320", "0.1234567891", "nan", "-0", "1_0", "٠.٥", " 0.3 ", ""]),
)
TOKEN = st.one_of(
    NUMBERISH,
    st.text(max_size=12),
    st.sampled_from(["*", "3", "cat", "-1", str(2**63), "9" * 5000, ",", ":", " ", "\ufeff"]),
)
BODY = st.lists(TOKEN, max_size=5).flatmap(
    lambda parts: st.sampled_from([",", ":", " ", "\n"]).map(lambda sep: sep.join(parts))
)
SPEC_TEXT = st.one_of(
    st.text(max_size=40),
    st.tuples(st.sampled_from([*FORGET_KINDS, "nope", ""]), BODY).map(":".join),
)


@FAST
@given(text=SPEC_TEXT)
def test_a_forget_spec_parses_and_round_trips_or_is_a_forget_spec_error(text):
    try:
        spec = parse_forget(text)
    except ForgetSpecError:
        return
    assert parse_forget(str(spec)) == spec  # the canonical text gives back the same value
    assert str(parse_forget(str(spec))) == str(spec)


@FAST
@given(fraction=st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True))
def test_every_fraction_round_trips_exactly(fraction):
    for text in (f"random:{fraction!r}", f"subclass:3:{fraction!r}", f"mislabeled:{fraction!r}"):
        spec = parse_forget(text)
        assert parse_forget(str(spec)) == spec and len(str(spec)) <= len(text)


# ----------------------------------------------------------------------------- id lists

ID_BYTES = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.lists(TOKEN, max_size=8)
    .flatmap(
        lambda parts: st.sampled_from([",", "\n", "\r\n", "\t", " ", ";"]).map(
            lambda sep: ("\ufeff" if len(parts) % 2 else "") + sep.join(parts)
        )
    )
    .map(str.encode),
)


@FAST
@given(data=ID_BYTES)
def test_an_id_list_is_ids_in_range_or_a_forget_spec_error(data):
    try:
        ids = parse_id_tokens(data, "the id list")
    except ForgetSpecError as err:
        assert str(err).startswith("the id list")  # every message says which list
        return
    assert ids and all(type(i) is int and 0 <= i <= MAX_ID for i in ids)
    assert len(set(ids)) == len(ids)


@FAST
@given(data=ID_BYTES)
def test_an_id_file_is_an_ids_spec_or_a_forget_spec_error(tmp_path, data):
    path = tmp_path / "ids.txt"
    path.write_bytes(data)
    try:
        spec = parse_forget(f"ids:{path}")
    except ForgetSpecError:
        return
    assert spec.source == str(path) and parse_forget(str(spec)) == spec


@FAST
@given(
    ids=st.lists(st.integers(0, MAX_ID), min_size=1, max_size=30, unique=True),
    sep=st.sampled_from(["\n", "\r\n", ",", ", ", " ", "\t\n"]),
    bom=st.booleans(),
    header=st.booleans(),
)
def test_a_valid_id_list_gives_its_ids_back(ids, sep, bom, header):
    body = "\n".join(map(str, ids)) if header else sep.join(map(str, ids))
    text = ("\ufeff" if bom else "") + ("id\n" if header else "") + body + "\n"
    assert parse_id_tokens(text.encode(), "the id list") == tuple(ids)
    assert parse_id_tokens(text, "the id list") == tuple(ids)


# ----------------------------------------------------------------------------- configs

SECTIONS = {
    "split": ["holdout", "test"],
    "train": ["epochs", "lr", "batch_size", "momentum", "schedule", "nesterov", "amp"],
    "twin": ["min_size", "max_epochs", "fit_margin"],
    "features": ["features", "k", "pgd_eps"],
    "predictor": ["kind", "rule", "folds"],
    "method_params": ["tmu", "finetune"],
}
TOP = ["dataset", "forget", "seed", "methods", "gold_seeds", "model", "device", "data_root"]
TOP += ["twin_tune", "stop_at_target", *SECTIONS]
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.sampled_from(["cosine", "gain", "auto", "mlp", "random:0.1", "1", "0.5"]),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=6), inner, max_size=3),
    ),
    max_leaves=8,
)


def _section(name: str):
    keys = st.one_of(st.sampled_from(SECTIONS[name]), st.text(max_size=6))
    return st.dictionaries(keys, VALUE, max_size=4)


CONFIG = st.dictionaries(
    st.one_of(st.sampled_from(TOP), st.text(max_size=8)),
    st.one_of(VALUE, *[_section(s) for s in SECTIONS]),
    max_size=6,
)


@FAST
@given(values=CONFIG)
def test_a_config_dict_is_a_run_config_or_a_config_error(values):
    try:
        config = from_dict(RunConfig, values)
    except ConfigError as err:
        assert str(err)  # a message, never an empty one
        return
    assert isinstance(config, RunConfig)


@FAST
@given(values=st.dictionaries(st.sampled_from(SECTIONS["train"]), VALUE, max_size=3))
def test_a_train_section_is_checked_key_by_key(values):
    try:
        from_dict(RunConfig, {"train": values})
    except ConfigError as err:
        assert any(f"train.{k}" in str(err) or repr(k) in str(err) for k in values)


KEY = st.text(alphabet=string.ascii_lowercase + "._", max_size=12)
OVERRIDE = st.one_of(
    st.text(max_size=20),
    st.tuples(KEY, st.one_of(st.text(max_size=8), VALUE.map(repr))).map("=".join),
    st.tuples(st.sampled_from(["train.epochs", "train", "twin.min_size", "a.b", "a"]), SCALAR).map(
        lambda kv: f"{kv[0]}={kv[1]!r}"
    ),
)


@FAST
@example(pairs=["0=", "0.="])  # nesting under a value: always tried first
@given(pairs=st.lists(OVERRIDE, max_size=4))
def test_set_overrides_parse_to_a_dict_or_a_config_error(pairs):
    try:
        values = parse_overrides(pairs)
    except ConfigError:
        return
    assert isinstance(values, dict)
    try:
        from_dict(RunConfig, values)
    except ConfigError:
        pass


@pytest.mark.parametrize("pairs", [["a=1", "a.b=2"], ["train.epochs=3", "train.epochs.x=1"]])
def test_set_overrides_that_nest_under_a_value_are_a_config_error(pairs):
    with pytest.raises(ConfigError):
        parse_overrides(pairs)


@pytest.mark.parametrize("seed", [2**64, 2**70])
def test_a_seed_beyond_64_bits_is_a_config_error(seed):
    with pytest.raises(ConfigError, match="seed"):
        from_dict(RunConfig, {"seed": seed})
