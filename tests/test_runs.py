"""Tests for tmu.runs.load_run on the run folder written by the end-to-end CLI run
(conftest.cli_run)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tmu
from tmu.config import RunConfig
from tmu.runs import RunFolderError, load_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loaded(cli_run):
    assert cli_run.first.returncode == 0, cli_run.first.stderr
    return tmu.load_run(cli_run.out)


def test_models_are_named_and_in_eval_mode(loaded, cli_run):
    assert set(loaded.models) == {"original", "gold_0", "gold_1", *cli_run.methods}
    assert all(not m.training for m in loaded.models.values())
    assert all(isinstance(m, torch.nn.Module) for m in loaded.models.values())


def test_config_split_and_report(loaded, cli_run):
    assert isinstance(loaded.config, RunConfig)
    assert loaded.config.dataset == "digits" and loaded.config.methods == cli_run.methods
    assert loaded.config.train.epochs == 2
    assert loaded.report == json.loads((cli_run.out / "report.json").read_text())
    assert {"train", "holdout", "test", "forget", "retain"} <= set(loaded.split)
    assert all(v.dtype == np.int64 for v in loaded.split.values())
    assert np.array_equal(
        np.union1d(loaded.split["forget"], loaded.split["retain"]), loaded.split["train"]
    )
    assert len(loaded.dataset) == 1797


def test_recomputed_forget_accuracy_equals_the_report(loaded):
    x, y = loaded.dataset.tensors
    ids = torch.as_tensor(loaded.split["forget"])
    for name, model in loaded.models.items():
        with torch.no_grad():
            acc = float((model(x[ids]).argmax(1) == y[ids]).float().mean())
        entry = (
            loaded.report["models"]["gold"][int(name[-1])]
            if name.startswith("gold_")
            else loaded.report["models"][name]
        )
        assert acc == pytest.approx(entry["acc"]["forget"], abs=1e-9), name


def test_predictions_hold_every_model_and_set(loaded, cli_run):
    for name in ("original", "gold_0", *cli_run.methods):
        for k in ("forget", "retain", "holdout", "test"):
            probs = loaded.predictions[f"{name}/{k}"]
            assert probs.shape == (len(loaded.split[k]), 10)
    assert loaded.predictions["predictor/forget_easy"].shape == (len(loaded.split["forget"]),)


def test_load_without_data(cli_run):
    run = load_run(cli_run.out, load_data=False)
    assert run.dataset is None and set(run.models) >= {"original"}


def test_load_run_on_a_non_run_folder(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(
        RunFolderError,
        match=r"is not a finished run folder: missing \['report.json', 'split.json'\]",
    ):
        load_run(tmp_path)
    with pytest.raises(RunFolderError, match="is not a finished run folder"):
        load_run(tmp_path / "nowhere")
