"""End-to-end tests of the command line (`python -m tmu`): the run folder contract of
architecture.md, reuse of stored models, and clean exit-2 errors for bad input."""
from __future__ import annotations

import json
import math
import re

import pytest
import torch

from tmu import cli
from tmu.config import ConfigError
from tmu.unlearn import METHODS

SETS = ("forget", "retain", "holdout", "test")
VS_GOLD = {"delta_forget", "delta_forget_signed", "per_class_delta_forget", "agreement_forget",
           "activation_distance_forget", "js_forget", "quadrants"}
QUADRANTS = {"aligned_easy", "aligned_hard", "over_forgotten", "under_forgotten"}

CLI_METHODS = ("tmu", "finetune", "neggrad_plus", "random_label")  # as in conftest's cli_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(cli_run):
    assert cli_run.methods == CLI_METHODS
    assert cli_run.first.returncode == 0, cli_run.first.stderr
    return json.loads((cli_run.out / "report.json").read_text())


def _check_entry(entry: dict) -> None:
    assert set(entry["acc"]) >= set(SETS)
    for k in SETS:
        assert 0.0 <= entry["acc"][k] <= 1.0
    for k in ("forget", "test"):
        per = entry["per_class"][k]
        assert len(per) == 10 and all(v is None or 0.0 <= v <= 1.0 for v in per)
    assert entry["seconds"] >= 0
    assert set(entry["mia"]) >= {"forget_member_rate", "auc_forget_vs_test"}
    assert 0.0 <= entry["mia"]["forget_member_rate"] <= 1.0 and 0.0 <= entry["mia"]["auc_forget_vs_test"] <= 1.0


def test_run_exits_0_and_prints_the_summary(cli_run):
    assert cli_run.first.returncode == 0, cli_run.first.stderr
    assert "Traceback" not in cli_run.first.stderr
    assert "gold-vs-gold" in cli_run.first.stdout and f"run folder: {cli_run.out}" in cli_run.first.stdout


def test_report_has_every_key_of_the_contract(report):
    assert {"config", "dataset", "models", "noise_floor", "predictor"} <= set(report)
    assert report["config"]["dataset"] == "digits" and report["config"]["methods"] == list(CLI_METHODS)
    assert report["config"]["train"]["epochs"] == 2 and report["config"]["forget"] == "subclass:3:0.3"
    ds = report["dataset"]
    assert ds["name"] == "digits" and ds["classes"] == [str(c) for c in range(10)]
    sizes = ds["sizes"]
    assert set(sizes) == {"train", "holdout", "test", "forget", "retain"}
    assert sizes["train"] + sizes["holdout"] + sizes["test"] == 1797
    assert sizes["forget"] + sizes["retain"] == sizes["train"] and sizes["forget"] > 0
    models = report["models"]
    assert set(models) >= {"original", "gold", *CLI_METHODS}
    _check_entry(models["original"])
    assert len(models["gold"]) == 2
    for g in models["gold"]:
        _check_entry(g)
    for name in CLI_METHODS:
        e = models[name]
        _check_entry(e)
        assert set(e["vs_gold"]) >= VS_GOLD and set(e["vs_gold"]["quadrants"]) == QUADRANTS
        assert sum(e["vs_gold"]["quadrants"].values()) == pytest.approx(1.0)
        assert e["vs_gold"]["delta_forget"] == pytest.approx(abs(e["vs_gold"]["delta_forget_signed"]))
        assert 0.0 <= e["vs_gold"]["agreement_forget"] <= 1.0
        assert e["retrain_time_ratio"] >= 0 and math.isfinite(e["retrain_time_ratio"])
    assert set(report["noise_floor"]) >= {"delta_forget", "agreement_forget"}
    assert set(report["predictor"]) >= {"accuracy", "balanced_accuracy", "predicted_hard", "true_hard"}
    assert 0.0 <= report["predictor"]["accuracy"] <= 1.0
    assert 0 <= report["predictor"]["predicted_hard"] <= sizes["forget"]


def test_subclass_forget_set_is_all_class_3(report, cli_run):
    split = json.loads((cli_run.out / "split.json").read_text())
    assert {"train", "holdout", "test", "forget", "retain"} <= set(split)
    assert len(split["forget"]) == report["dataset"]["sizes"]["forget"]
    assert set(split["forget"]) <= set(split["train"]) and not set(split["forget"]) & set(split["retain"])
    per_class = report["models"]["original"]["per_class"]["forget"]
    assert [c for c, v in enumerate(per_class) if v is not None] == [3]


def test_run_folder_files_load_with_weights_only(cli_run, report):
    out = cli_run.out
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == {"name": "cnn", "in_channels": 1, "num_classes": 10}
    names = {p.stem for p in (out / "models").glob("*.pt")}
    assert names == {"original", "gold_0", "gold_1", *CLI_METHODS}
    for path in (out / "models").glob("*.pt"):
        state = torch.load(path, weights_only=True)
        assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    assert not list(out.rglob("*.tmp"))  # atomic writes left no temp file


def test_second_identical_run_reuses_the_stored_models(cli_run, report):
    assert cli_run.second.returncode == 0, cli_run.second.stderr
    report2 = json.loads((cli_run.out2 / "report.json").read_text())
    assert report["models"]["original"]["cached"] is False
    assert report2["models"]["original"]["cached"] is True
    assert all(g["cached"] for g in report2["models"]["gold"])
    assert all(report2["models"][m]["cached"] for m in CLI_METHODS)
    assert "reusing" in cli_run.second.stderr
    # Same models, same numbers.
    for name in ("original", *CLI_METHODS):
        assert report2["models"][name]["acc"] == report["models"][name]["acc"]


def test_methods_command_lists_every_method(capsys):
    assert cli.main(["methods"]) == 0
    out = capsys.readouterr().out
    for name, cls in METHODS.items():
        assert name in out and cls.description in out


# ----------------------------------------------------------------------------- bad input

BAD = [
    (["--dataset", "nope"], "unknown dataset 'nope'"),
    (["--forget", "random:1.5"], "fraction 1.5 in forget spec 'random:1.5'"),
    (["--forget", "class:42"], "unknown class 42"),
    (["--forget", "ids:/no/such/file.txt"], "id file '/no/such/file.txt'"),
    (["--methods", "scrubz,tmu"], "unknown method.*scrubz"),
    (["--set", "train.bogus=1"], r"unknown TrainConfig key\(s\) \['bogus'\]"),
    (["--set", "method_params.tmu.bogus=1"], r"unknown hyper-parameter\(s\) \['bogus'\] for method 'tmu'"),
    (["--set", "train.epochs"], "--set 'train.epochs' must look like SECTION.KEY=VALUE"),
    (["--gold-seeds", "0"], "gold_seeds=0 must be at least 1"),
    (["--device", "cuda:x"], "device 'cuda:x' is malformed"),
]


@pytest.mark.parametrize("extra,message", BAD, ids=[" ".join(e) for e, _ in BAD])
def test_bad_input_exits_2_with_one_error_line(extra, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TMU_HOME", str(tmp_path / "store"))
    try:
        rc = cli.main(["run", "--dataset", "digits", "-q", "--out", str(tmp_path / "out"), *extra])
    except BaseException as err:  # any escape would be a traceback for the user
        pytest.fail(f"{type(err).__name__} escaped cli.main: {err}")
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and "Traceback" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_gpu_exits_2_in_a_real_process(tmp_path, tmu_cmd):
    proc = tmu_cmd(["run", "--dataset", "digits", "--device", "cuda", "-q", "--out", str(tmp_path / "o")],
                   tmp_path / "store", tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "error: device 'cuda'" in proc.stderr and "no CUDA GPU" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_method_exits_2_in_a_real_process(tmp_path, tmu_cmd):
    proc = tmu_cmd(["run", "--dataset", "digits", "--methods", "scrubz", "-q", "--out", str(tmp_path / "o")],
                   tmp_path / "store", tmp_path, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2 and "error: unknown method" in proc.stderr and "scrubz" in proc.stderr


def test_parse_overrides():
    assert cli.parse_overrides(["train.epochs=3", "twin.min_size=100", "method_params.tmu.hard_label=random",
                                "methods=[\"tmu\"]"]) == {
        "train": {"epochs": 3}, "twin": {"min_size": 100}, "method_params": {"tmu": {"hard_label": "random"}},
        "methods": ["tmu"]}
    with pytest.raises(ConfigError, match=r"--set '=3' must look like SECTION.KEY=VALUE"):
        cli.parse_overrides(["=3"])
