"""Tests for tmu.artifacts: config keys, atomic writes, and the run store's round trips."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from tmu import artifacts
from tmu.artifacts import atomic_write, config_key, default_root, load_state_dict, write_json
from tmu.models import build_model


# ----------------------------------------------------------------------------- config_key


def test_config_key_is_stable_and_short():
    k = config_key("gold", {"b": 1, "a": [1, 2]}, np.array([3, 1, 2]))
    assert k == config_key(
        "gold", {"a": [1, 2], "b": 1}, np.array([3, 1, 2])
    )  # dict order is irrelevant
    assert len(k) == 16 and int(k, 16) >= 0
    # Frozen value: the store's keys must not change between versions, or every cache is lost.
    assert config_key("x", 1) == config_key("x", 1)


@pytest.mark.parametrize(
    "other",
    [
        ("gold", {"b": 1, "a": [1, 2]}, np.array([3, 1, 4])),  # array content
        ("gold", {"b": 2, "a": [1, 2]}, np.array([3, 1, 2])),  # nested value
        ("original", {"b": 1, "a": [1, 2]}, np.array([3, 1, 2])),  # label
        ("gold", {"b": 1, "a": [2, 1]}, np.array([3, 1, 2])),  # list order
        ("gold", {"b": 1, "a": [1, 2]}),  # a missing part
    ],
)
def test_config_key_is_content_sensitive(other):
    assert config_key(*other) != config_key("gold", {"b": 1, "a": [1, 2]}, np.array([3, 1, 2]))


def test_config_key_parts_are_separated():
    assert config_key("ab", "c") != config_key("a", "bc")


def test_config_key_bool_masks_and_int_arrays():
    mask = np.array([True, False, True])
    assert config_key(mask) == config_key(np.array([1, 0, 1]))  # the mask as ids 1/0
    assert config_key(mask) != config_key(~mask)


def test_config_key_sees_float_array_content():
    assert config_key(np.array([0.1, 0.2])) != config_key(np.array([0.3, 0.4]))


def test_config_key_sees_large_arrays_nested_in_dicts():
    a = np.arange(5000)
    b = a.copy()
    b[2500] = -1  # numpy's str() elides the middle of large arrays
    assert config_key({"ids": a}) != config_key({"ids": b})


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_writes_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "deep" / "f.bin"
    atomic_write(path, b"hello")
    atomic_write(path, b"world")
    assert path.read_bytes() == b"world"
    assert os.listdir(path.parent) == ["f.bin"]


def test_failure_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    write_json(path, {"v": 1})

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(artifacts.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["f.json"]


def test_failure_while_writing_data_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, b"old")
    with pytest.raises(TypeError):
        atomic_write(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


# ----------------------------------------------------------------------------- Store


def test_default_root_follows_tmu_home(store, tmp_path, monkeypatch):
    assert store.root == tmp_path / "store" and default_root() == tmp_path / "store"
    monkeypatch.delenv("TMU_HOME")
    assert str(default_root()) == "runs"


def test_store_round_trips_a_model(store):
    model = build_model("cnn", 1, 10, seed=0)
    assert not store.has_model("k1")
    store.save_model("k1", model, {"seconds": 1.5, "label": "original"})
    assert store.has_model("k1")
    loaded, meta = store.load_model("k1", build_model("cnn", 1, 10, seed=1))
    assert meta == {"seconds": 1.5, "label": "original"} and not loaded.training
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values())
    )
    # The file is a plain state_dict that loads with weights_only=True.
    raw = torch.load(store.root / "models" / "k1.pt", weights_only=True)
    assert set(raw) == set(model.state_dict())
    assert load_state_dict(store.root / "models" / "k1.pt").keys() == raw.keys()


def test_store_model_without_metadata_is_incomplete(store):
    store.save_model("k2", build_model("cnn", 1, 10, seed=0), {})
    (store.root / "models" / "k2.json").unlink()
    assert not store.has_model("k2")


def test_store_round_trips_arrays(store):
    assert store.load_arrays("a") is None
    store.save_arrays(
        "a", features=np.arange(6.0).reshape(2, 3), g=np.array([1, 0]), seconds=np.array(2.5)
    )
    out = store.load_arrays("a")
    assert set(out) == {"features", "g", "seconds"}
    assert np.array_equal(out["features"], np.arange(6.0).reshape(2, 3)) and out["g"].tolist() == [
        1,
        0,
    ]
    assert float(out["seconds"]) == 2.5


def test_store_round_trips_json(store):
    assert store.load_json("r") is None
    store.save_json("r", {"params": {"lr": 0.1}, "trials": [1, 2], "nan": float("nan")})
    out = store.load_json("r")
    assert out["params"] == {"lr": 0.1} and out["trials"] == [1, 2] and np.isnan(out["nan"])


def test_cached_model_trains_once_then_loads(store, caplog):
    calls = []

    def train():
        calls.append(1)
        return build_model("cnn", 1, 10, seed=0)

    model, meta = store.cached_model(
        "k3",
        "gold_0",
        lambda: build_model("cnn", 1, 10, seed=1),
        train,
        extra={"params": {"lr": 0.1}},
    )
    assert calls == [1] and meta["cached"] is False and meta["label"] == "gold_0"
    assert meta["params"] == {"lr": 0.1} and meta["seconds"] >= 0
    assert store.has_model("k3")
    with caplog.at_level("INFO", logger="tmu.artifacts"):
        loaded, meta2 = store.cached_model(
            "k3", "gold_0", lambda: build_model("cnn", 1, 10, seed=1), train
        )
    assert calls == [1]  # not trained again
    assert meta2 == {**meta, "cached": True} and not loaded.training
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values())
    )
    assert "reusing stored gold_0 model (key k3)" in caplog.text


def test_keys_change_with_the_cache_version(monkeypatch):
    from tmu import artifacts

    before = artifacts.config_key("original", {"a": 1})
    monkeypatch.setattr(artifacts, "CACHE_VERSION", "next")
    assert artifacts.config_key("original", {"a": 1}) != before


# ----------------------------------------------------------------------------- a reader's discard


def _writer_wins_the_race(monkeypatch, name, write_fresh):
    """Patch `artifacts.<name>` (the loader a read uses) so that its first call fails as on a
    broken file, after another writer has replaced the file with a good one: the moment between
    a reader's failed read and its discard."""
    owner, attr = (artifacts.json, "loads") if name == "json.loads" else (artifacts, name)
    if name == "np.load":
        owner, attr = artifacts.np, "load"
    real, calls = getattr(owner, attr), []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            write_fresh()
            raise ValueError("truncated (the old file)")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, attr, racing)
    return calls


def test_a_failed_read_never_discards_the_fresh_model_a_writer_just_renamed_in(store, monkeypatch):
    fresh = build_model("cnn", 1, 10, seed=3)
    store.save_model("m", build_model("cnn", 1, 10, seed=0), {"label": "old"})
    (store.root / "models" / "m.pt").write_bytes(b"PK\x03\x04 truncated")  # the broken old file
    other = artifacts.Store(store.root)  # another process's writer
    _writer_wins_the_race(
        monkeypatch, "load_state_dict", lambda: other.save_model("m", fresh, {"label": "fresh"})
    )
    loaded, meta = store.load_model("m", build_model("cnn", 1, 10, seed=1))
    assert meta == {"label": "fresh"}
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), fresh.state_dict().values())
    )
    assert (store.root / "models" / "m.pt").is_file() and (
        store.root / "models" / "m.json"
    ).is_file()


def test_a_failed_read_never_discards_fresh_arrays_or_results(store, monkeypatch):
    (store.root / "arrays").mkdir(parents=True)
    (store.root / "arrays" / "a.npz").write_bytes(b"not a zip")
    other = artifacts.Store(store.root)
    _writer_wins_the_race(monkeypatch, "np.load", lambda: other.save_arrays("a", x=np.arange(3)))
    assert store.load_arrays("a")["x"].tolist() == [0, 1, 2]
    assert (store.root / "arrays" / "a.npz").is_file()
    monkeypatch.undo()
    (store.root / "results").mkdir(parents=True)
    (store.root / "results" / "r.json").write_text('{"half":')
    _writer_wins_the_race(monkeypatch, "json.loads", lambda: other.save_json("r", {"v": 2}))
    assert store.load_json("r") == {"v": 2}
    assert (store.root / "results" / "r.json").is_file()


def test_a_file_that_stays_broken_is_still_discarded(store, caplog):
    (store.root / "results").mkdir(parents=True)
    (store.root / "results" / "r.json").write_text('{"half":')
    with caplog.at_level("WARNING", logger="tmu.artifacts"):
        assert store.load_json("r") is None
    assert not (store.root / "results" / "r.json").exists()
    assert "ignoring unreadable store file" in caplog.text
