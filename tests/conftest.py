"""Shared fixtures: a tiny seeded digits pool, tiny seeded models trained on the CPU, a tmp store.

Everything is small enough that the whole library suite runs in a couple of minutes on 2 CPU
cores. Configurations are always explicit (never the library's tunable defaults).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from tmu.artifacts import Store
from tmu.config import TrainConfig
from tmu.data import Pool, load_dataset
from tmu.models import build_model
from tmu.training import train_from_scratch

import ray_test_env  # noqa: E402, F401  (Ray's environment, before anything imports Ray)

# The suite pins its own threads (below); tmu.threads' sharing is tested on its own.
os.environ["TMU_SHARE_CORES"] = "0"

# Tiny models spend their time in per-op overhead: one intra-op thread is faster, and far faster
# when another process shares the 2 cores (thread oversubscription made it ~20x slower).
torch.set_num_threads(1)

CPU = torch.device("cpu")
TINY_TRAIN = TrainConfig(
    epochs=5, lr=0.05, batch_size=16, momentum=0.9, weight_decay=5e-4, schedule="cosine"
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: trains a full pipeline, starts a process, Ray or a browser"
    )


@dataclass(frozen=True)
class Tiny:
    """A small problem over the digits pool: sorted id sets and a model trained on `train`."""

    pool: Pool
    x: torch.Tensor
    labels: np.ndarray
    train: np.ndarray  # 600 ids the model was trained on
    holdout: np.ndarray  # 200 ids it never saw
    test: np.ndarray  # 200 ids it never saw
    model: torch.nn.Module

    def build(self, seed: int | None = None) -> torch.nn.Module:
        return build_model("cnn", self.pool.in_channels, self.pool.num_classes, seed)


@pytest.fixture(scope="session")
def pool() -> Pool:
    """sklearn's bundled 8x8 digits (1,797 images, 10 classes): offline, no download."""
    return load_dataset("digits")


@pytest.fixture(scope="session")
def tiny(pool) -> Tiny:
    """600 / 200 / 200 seeded ids and a small CNN trained 5 epochs on the 600 (under 1 s;
    about 90 % test accuracy)."""
    perm = np.random.default_rng(0).permutation(len(pool))
    train, hold, test = (np.sort(perm[:600]), np.sort(perm[600:800]), np.sort(perm[800:1000]))
    labels = pool.y.numpy()
    build = lambda: build_model("cnn", pool.in_channels, pool.num_classes)  # noqa: E731
    model = train_from_scratch(build, pool.x, labels, train, TINY_TRAIN, device=CPU, seed=0)
    return Tiny(pool, pool.x, labels, train, hold, test, model)


@pytest.fixture()
def store(tmp_path, monkeypatch) -> Store:
    """A run store in a fresh tmp folder, also exported as $TMU_HOME."""
    monkeypatch.setenv("TMU_HOME", str(tmp_path / "store"))
    return Store()


# ----------------------------------------------------------------------------- end-to-end CLI run

ROOT = Path(__file__).resolve().parents[1]
CLI_METHODS = ("tmu", "finetune", "neggrad_plus", "random_label")
CLI_ARGS = [
    "run",
    "--dataset",
    "digits",
    "--seed",
    "0",
    "--gold-seeds",
    "2",
    "--methods",
    ",".join(CLI_METHODS),
    "--device",
    "cpu",
    "--forget",
    "subclass:3:0.3",
    "--set",
    "train.epochs=2",
    "--set",
    "twin.min_size=60",
    "--set",
    "twin.max_epochs=2",
    "--set",
    "predictor.epochs=20",
    "--set",
    "predictor.folds=2",
    # pinned so that a change of the library's defaults cannot slow the suite down
    "--set",
    "train.batch_size=32",
    "--set",
    "twin.curriculum_epochs=1",
    *[a for m in CLI_METHODS for a in ("--set", f"method_params.{m}.epochs=2")],
]


def run_tmu(
    args: list[str], home: Path, cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`python -m tmu ARGS` in a subprocess with TMU_HOME=home, one CPU thread, the repo
    importable."""
    env = {**os.environ, "TMU_HOME": str(home), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tmu", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def tmu_cmd():
    """`run_tmu(args, home, cwd, timeout)`: the CLI in a subprocess (see run_tmu)."""
    return run_tmu


@dataclass(frozen=True)
class CliRun:
    methods: tuple[str, ...]  # the --methods of both runs
    home: Path  # the run store (TMU_HOME)
    out: Path  # --out of the first run
    first: subprocess.CompletedProcess
    out2: Path  # --out of the second, identical run (-v)
    second: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory) -> CliRun:
    """The same tiny `tmu run` twice against one store (the second must reuse every model). Both
    show their progress, on a captured stderr (not a terminal), so as one line per stage."""
    base = tmp_path_factory.mktemp("cli")
    home, out, out2 = base / "store", base / "out", base / "out2"
    first = run_tmu([*CLI_ARGS, "--out", str(out)], home, base)
    second = run_tmu(["-v", *CLI_ARGS, "--out", str(out2)], home, base)
    return CliRun(CLI_METHODS, home, out, first, out2, second)
