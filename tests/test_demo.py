"""tmu.demo and the shipped models: the default demo's costly models ship under the store keys
the current code asks for, rebuild bit for bit, and a shipped file that was changed is never
served."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from tmu import demo
from tmu.artifacts import SHIPPED, Store, shipped_manifest
from tmu.pipeline import base_key, load_data, prepare_twin, train_models, train_original


def test_the_manifest_lists_every_shipped_file_with_its_hash():
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    assert sorted(e["label"] for e in manifest["models"].values()) == sorted(demo.LABELS)
    for key, entry in manifest["models"].items():
        data = (SHIPPED / f"{key}.pt").read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["label"]
        assert entry["meta"]["label"] == entry["label"] and entry["meta"]["seconds"] > 0
    assert manifest["built_with"]["threads"] == 1


def test_the_dashboards_opening_run_asks_for_the_shipped_models(monkeypatch):
    from dashboard.service import defaults, make_config

    monkeypatch.delenv("TMU_DASHBOARD_DATASET", raising=False)
    monkeypatch.delenv("TMU_DASHBOARD_PROFILE", raising=False)
    cfg = make_config(defaults())
    assert base_key(cfg) == base_key(demo.demo_config())
    assert (cfg.gold_seeds, cfg.twin, cfg.seed) == (3, demo.demo_config().twin, 0)


@pytest.mark.slow
def test_the_demo_run_loads_every_costly_model_instead_of_training_it(tmp_path, monkeypatch):
    import tmu.pipeline.twin_problem as twin_problem

    def never(*args, **kwargs):
        raise AssertionError("the twin model was trained, not loaded from the shipped store")

    monkeypatch.setattr(twin_problem, "train_twin_model", never)
    cfg = demo.demo_config()
    store = Store(tmp_path)  # shipped models come from SHIPPED
    data = load_data(cfg)
    trained = train_models(cfg, data, store)
    assert all(f.cached and f.meta.get("shipped") for f in trained.models().values())
    twin = prepare_twin(cfg, data, trained.original, store)
    assert twin.fit.mode == "retrain" and twin.fit.twin >= twin.fit.target - 0.02


BUILT = json.loads((SHIPPED / "manifest.json").read_text())["built_with"]
SAME_KERNELS = torch.backends.cpu.get_cpu_capability() == BUILT["cpu_capability"]


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """The demo's original trained again here, one thread, into an empty store."""
    cfg = demo.demo_config()
    store = Store(tmp_path_factory.mktemp("rebuild"), shipped=None)
    torch.set_num_threads(1)
    data = load_data(cfg)
    original = train_original(cfg, data, store)
    assert not original.cached
    return cfg, data, store, original


@pytest.mark.slow
def test_the_shipped_original_rebuilds_as_good_a_model(rebuilt):
    cfg, data, _, original = rebuilt
    shipped = data.build()
    shipped.load_state_dict(torch.load(SHIPPED / f"{base_key(cfg)}.pt", weights_only=True))
    test = data.splits.test
    acc = [
        float((data.predict(m, test).argmax(1) == data.labels[test]).mean())
        for m in (original.model, shipped)
    ]
    assert abs(acc[0] - acc[1]) < 0.02, acc


@pytest.mark.slow
@pytest.mark.skipif(
    not SAME_KERNELS,
    reason=f"bits compare only under the build's torch CPU kernels ({BUILT['cpu_capability']}, "
    f"here {torch.backends.cpu.get_cpu_capability()}): other kernels round differently, and "
    "80 epochs make that another model",
)
def test_the_shipped_original_rebuilds_bit_for_bit(rebuilt):
    """One thread, the same code, the same CPU kernels: the same weights (the golds and the
    twin are trained by the same loop; `python scripts/build_demo_store.py --check` rebuilds
    them all)."""
    cfg, _, store, _ = rebuilt
    assert demo.compare(SHIPPED, store, {"original": base_key(cfg)}, complete=False) == []


def test_a_changed_shipped_file_is_never_served(tmp_path, tiny):
    shipped, key = tmp_path / "shipped", "0123456789abcdef"
    shipped.mkdir()
    store = Store(tmp_path / "store", shipped=shipped)
    torch.save(tiny.model.state_dict(), shipped / f"{key}.pt")
    data = (shipped / f"{key}.pt").read_bytes()
    meta = {"label": "original", "seconds": 1.0}
    entry = {"label": "original", "sha256": hashlib.sha256(data).hexdigest(), "meta": meta}
    (shipped / "manifest.json").write_text(json.dumps({"models": {key: entry}}))
    shipped_manifest.cache_clear()
    assert store.has_model(key)  # copied in: the hash matches
    assert json.loads((store.root / "models" / f"{key}.json").read_text())["shipped"] is True
    other = Store(tmp_path / "other", shipped=shipped)
    (shipped / f"{key}.pt").write_bytes(data[:-8] + b"tampered")
    assert not other.has_model(key)  # the hash no longer matches: trained instead
    assert not Store(tmp_path / "none", shipped=None).has_model(key)
    shipped_manifest.cache_clear()
