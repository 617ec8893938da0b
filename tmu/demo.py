"""The default demo's costly models, shipped with the repository so that the dashboard's first
Run charts within a minute on a 2-core laptop.

The default scenario (`tmu.scenarios.DEFAULT_SCENARIO`) trains with the memorising recipe: its
original, three gold models and its retrained twin take minutes on a CPU. `build` trains them
with the real pipeline into a fresh store, one thread (so the arithmetic is the same on every
run), and copies them to `assets/store/` with a manifest: each file under its store key (the
hash of the config that made it, so a change to the code or the recipe asks for new keys and
the shipped files are simply not used) and with the sha256 of its bytes (a changed file is never
served). `check` rebuilds them and compares every tensor bit for bit.

    python scripts/build_demo_store.py          # rebuild assets/store
    python scripts/build_demo_store.py --check  # rebuild in a temporary store and compare
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import tempfile
from pathlib import Path

import torch

from .artifacts import SHIPPED, Store, load_state_dict, shipped_manifest
from .config import RunConfig, from_dict
from .models import apply_recipe
from .pipeline import load_data, prepare_twin, train_models
from .scenarios import DEFAULT_SCENARIO, scenario_values

LABELS = ("original", "gold_0", "gold_1", "gold_2", "twin")
"""The shipped models: the ones that cost a full training each."""


def demo_config(seed: int = 0) -> RunConfig:
    """The dashboard's opening run: the default scenario, three gold models, seed 0."""
    values = scenario_values(DEFAULT_SCENARIO, {"seed": seed, "gold_seeds": 3, "device": "cpu"})
    return from_dict(RunConfig, apply_recipe(values))


def train_into(store: Store, cfg: RunConfig) -> dict[str, str]:
    """Train (or load) the demo's costly models into `store` with the real stages, one thread;
    returns their store keys by label."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = load_data(cfg)
        trained = train_models(cfg, data, store)
        prepare_twin(cfg, data, trained.original, store)
    finally:
        torch.set_num_threads(threads)
    keys = {}
    for meta in sorted((store.root / "models").glob("*.json")):
        label = json.loads(meta.read_text()).get("label")
        if label in LABELS:
            keys[label] = meta.stem
    missing = sorted(set(LABELS) - set(keys))
    if missing:
        raise RuntimeError(f"the demo run made no {missing} model")
    return keys


def build(out: Path = SHIPPED, cfg: RunConfig | None = None) -> dict:
    """Train the demo's models in a fresh store and write them, with `manifest.json`, to `out`
    (replacing what was there). Returns the manifest."""
    cfg = cfg or demo_config()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp, shipped=None)
        keys = train_into(store, cfg)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        models = {}
        for label, key in keys.items():
            data = (store.root / "models" / f"{key}.pt").read_bytes()
            (out / f"{key}.pt").write_bytes(data)
            meta = json.loads((store.root / "models" / f"{key}.json").read_text())
            models[key] = {
                "label": label,
                "sha256": hashlib.sha256(data).hexdigest(),
                "meta": meta,
            }
    manifest = {
        "built_with": {
            "scenario": DEFAULT_SCENARIO,
            "seed": cfg.seed,
            "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "machine": platform.machine(),
            "threads": 1,
            "command": "python scripts/build_demo_store.py",
        },
        "models": models,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shipped_manifest.cache_clear()
    return manifest


def compare(
    shipped: Path, rebuilt: Store, keys: dict[str, str], complete: bool = True
) -> list[str]:
    """What differs between the shipped models and those of `rebuilt` (`keys`: label -> key): a
    key that is not shipped, with `complete` a shipped key no longer asked for, or a tensor that
    is not bit for bit the same ([] when all match)."""
    manifest = shipped_manifest(shipped)
    problems = [
        f"{label}: key {key} is not shipped" for label, key in keys.items() if key not in manifest
    ]
    if complete:
        problems += [
            f"{e['label']}: shipped key {key} is no longer asked for"
            for key, e in manifest.items()
            if key not in keys.values()
        ]
    for label, key in keys.items():
        if key not in manifest:
            continue
        a = load_state_dict(shipped / f"{key}.pt")
        b = load_state_dict(rebuilt.root / "models" / f"{key}.pt")
        if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
            problems.append(f"{label}: the rebuilt weights differ from the shipped ones")
    return problems


def check(shipped: Path = SHIPPED, cfg: RunConfig | None = None) -> list[str]:
    """Rebuild the demo's models in a temporary store and `compare` them with the shipped ones."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp, shipped=None)
        return compare(shipped, store, train_into(store, cfg or demo_config()))
