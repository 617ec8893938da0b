"""The wired pipeline: twin-tuned variants, and TMU's independence from the gold models."""
from __future__ import annotations

import numpy as np
import pytest

from tmu.artifacts import Store
from tmu.config import RunConfig, from_dict
from tmu.pipeline import execute, method_entries, plan_stages, validate
from tmu.report import build_report
from tmu.tuning import grid_points
from tmu.unlearn import METHODS

TINY = {"dataset": "digits", "forget": "random:0.1", "train": {"epochs": 2, "batch_size": 32},
        "twin": {"min_size": 60, "max_epochs": 2, "curriculum_epochs": 1},
        "predictor": {"epochs": 20, "folds": 2},
        "method_params": {"finetune": {"epochs": 1}, "random_label": {"epochs": 1}}}


def tiny_config(**values) -> RunConfig:
    return from_dict(RunConfig, {**TINY, **values})


def test_entries_add_a_tuned_variant_per_listed_method():
    cfg = tiny_config(methods=["tmu", "finetune", "random_label"], twin_tune=["finetune", "tmu"])
    names = [(e.name, e.method, e.tuned) for e in method_entries(cfg)]
    # TMU is always tuned (no extra entry); finetune gets a +twin variant; random_label does not.
    assert names == [("tmu", "tmu", True), ("finetune", "finetune", False),
                     ("random_label", "random_label", False), ("finetune+twin", "finetune", True)]
    assert plan_stages(cfg)[-2:] == ["finetune+twin", "evaluate"]


def test_unknown_twin_tune_method_is_rejected():
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['nope'\] in twin_tune"):
        validate(tiny_config(methods=["finetune"], twin_tune=["nope"]))


def test_tuned_variant_reports_the_best_twin_trial(tmp_path):
    cfg = tiny_config(methods=["finetune"], twin_tune=["finetune"], gold_seeds=1)
    report = build_report(execute(cfg, store=Store(tmp_path)))
    tuned, default = report["models"]["finetune+twin"], report["models"]["finetune"]
    assert report["methods"] == ["finetune", "finetune+twin"]
    assert tuned["twin_tuned"] is True and default["twin_tuned"] is False
    trials = tuned["twin_tuning"]["trials"]
    assert len(trials) == len(grid_points(METHODS["finetune"].grid))
    best = min(trials, key=lambda t: t["score"])
    assert tuned["params"] == tuned["twin_tuning"]["chosen"] == best["params"]
    assert default["params"] == {**METHODS["finetune"].defaults, "epochs": 1}


def test_tmu_never_depends_on_the_gold_models(tmp_path):
    """Changing the number of gold models must not change anything TMU does (spec §6)."""
    runs = [execute(tiny_config(methods=["tmu"], gold_seeds=k), store=Store(tmp_path / str(k))) for k in (1, 2)]
    for key in ("forget_easy", "forget_proba"):
        np.testing.assert_array_equal(runs[0].extras[key], runs[1].extras[key])
    assert runs[0].extras["tuning"]["tmu"]["params"] == runs[1].extras["tuning"]["tmu"]["params"]
    a, b = (r.models["tmu"].state_dict() for r in runs)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_whole_class_forget_samples_are_all_predicted_hard(tmp_path):
    """No retained sample of the class: no retrained model can predict it, so TMU flips them all."""
    run = execute(tiny_config(methods=["tmu"], forget="class:4", gold_seeds=1), store=Store(tmp_path))
    assert len(run.extras["forget_easy"]) == len(run.splits.forget) > 0
    assert not run.extras["forget_easy"].any()
    assert (run.extras["forget_proba"] == 0).all()
    assert build_report(run)["models"]["tmu"]["acc"]["forget"] < 0.2


def test_whole_class_is_flipped_even_when_the_twin_picks_no_flipping(tmp_path, monkeypatch):
    """The twin's gold saw the class, so its tuning may choose oversample 0; orphans flip anyway."""
    monkeypatch.setattr(METHODS["tmu"], "grid", [{"oversample": 0}])
    cfg = tiny_config(methods=["tmu"], forget="class:4", gold_seeds=1, train={"epochs": 8, "batch_size": 32})
    report = build_report(execute(cfg, store=Store(tmp_path)))
    assert report["models"]["original"]["acc"]["forget"] > 0.9   # memorised: there is something to flip
    assert report["models"]["tmu"]["params"]["oversample"] == 0
    assert report["models"]["tmu"]["acc"]["forget"] < 0.1
