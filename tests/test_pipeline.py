"""The wired pipeline: validation before any data is loaded, the stage values of `execute`,
twin-tuned variants, and TMU's independence from the gold models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tmu import pipeline
from tmu.artifacts import Store
from tmu.config import RunConfig, from_dict
from tmu.forget import ClassForget, ForgetSpecError, RandomForget, SubclassForget
from tmu.pipeline import (
    Data,
    Decisions,
    Fitted,
    Result,
    Trained,
    Twin,
    Unlearned,
    execute,
    method_entries,
    needs_twin,
    plan_stages,
    validate,
)
from tmu.report import build_report, evaluate_result, model_probs
from tmu.runs import load_run, write_run
from tmu.training import predict
from tmu.tuning import choose_trial, grid_points, tie_tolerance
from tmu.unlearn import METHODS

TINY = {
    "dataset": "digits",
    "forget": "random:0.1",
    "device": "cpu",
    "train": {"epochs": 2, "batch_size": 32},
    "twin": {"min_size": 60, "max_epochs": 2, "curriculum_epochs": 1},
    "predictor": {"epochs": 20, "folds": 2},
    "method_params": {"finetune": {"epochs": 1}, "random_label": {"epochs": 1}},
}


def tiny_config(**values) -> RunConfig:
    return from_dict(RunConfig, {**TINY, **values})


def report_of(result: Result) -> dict:
    return evaluate_result(result)[0]


# ----------------------------------------------------------------------------- plan


def test_entries_add_a_tuned_variant_per_listed_method():
    cfg = tiny_config(methods=["tmu", "finetune", "random_label"], twin_tune=["finetune", "tmu"])
    names = [(e.name, e.method, e.tuned) for e in method_entries(cfg)]
    # TMU is always tuned (no extra entry); finetune gets a +twin variant; random_label does not.
    assert names == [
        ("tmu", "tmu", True),
        ("finetune", "finetune", False),
        ("random_label", "random_label", False),
        ("finetune+twin", "finetune", True),
    ]
    assert plan_stages(cfg)[-2:] == ["finetune+twin", "evaluate"]


def test_entries_add_a_stopped_variant_per_listed_method():
    cfg = tiny_config(methods=["tmu", "finetune"], stop_at_target=["finetune", "tmu"])
    names = [(e.name, e.method, e.tuned, e.stopped) for e in method_entries(cfg)]
    assert names == [
        ("tmu", "tmu", True, False),
        ("finetune", "finetune", False, False),
        ("tmu+stop", "tmu", True, True),
        ("finetune+stop", "finetune", False, True),
    ]
    only_finetune = tiny_config(methods=["finetune"], stop_at_target=["finetune"])
    assert needs_twin(only_finetune)  # the target is the twin's estimate
    assert not needs_twin(tiny_config(methods=["finetune"]))


def test_plan_stages_and_needs_twin():
    cfg = tiny_config(methods=["finetune"], gold_seeds=2)
    assert not needs_twin(cfg)
    assert plan_stages(cfg) == ["original", "gold 1/2", "gold 2/2", "finetune", "evaluate"]
    assert needs_twin(tiny_config(methods=["finetune"], twin_tune=["finetune"]))
    assert plan_stages(tiny_config(methods=["tmu"], gold_seeds=1)) == [
        "original",
        "gold 1/1",
        "twin",
        "tmu",
        "evaluate",
    ]


# ----------------------------------------------------------------------------- validate


def test_validate_returns_the_parsed_forget_spec():
    assert validate(tiny_config()) == RandomForget(0.1)
    assert validate(tiny_config(forget="subclass:*:0.3")) == SubclassForget("*", 0.3)
    assert validate(tiny_config(forget="class:1,7")) == ClassForget(("1", "7"))


INVALID = [
    (
        {"methods": ["finetune"], "twin_tune": ["nope"]},
        ValueError,
        r"unknown method\(s\) \['nope'\] in twin_tune",
    ),
    (
        {"methods": ["scrubz"]},
        ValueError,
        r"unknown method\(s\) \['scrubz'\]; valid: \['bad_teacher'",
    ),
    ({"methods": []}, ValueError, "no method to run"),
    (
        {"model": "vgg"},
        ValueError,
        r"unknown model\(s\) \['vgg'\]; valid: \['cnn', 'resnet18', 'resnet9'\]",
    ),
    (
        {"predictor": {"kind": "svm"}},
        ValueError,
        r"unknown predictor\(s\) \['svm'\]; valid: \['logistic', 'mlp'\]",
    ),
    (
        {"features": {"features": ["DF", "XX"]}},
        ValueError,
        r"unknown feature\(s\) \['XX'\]; valid: \['AF'",
    ),
    ({"dataset": "imagenet"}, ValueError, "unknown dataset 'imagenet'; valid names: mnist5k"),
    ({"dataset": "imagefolder:"}, ValueError, "no path given"),
    ({"device": "cuda:x"}, ValueError, "device 'cuda:x' is malformed"),
    ({"device": "tpu"}, ValueError, "unknown device 'tpu'"),
    ({"forget": "random:1.5"}, ForgetSpecError, "fraction 1.5 in forget spec 'random:1.5'"),
    ({"forget": "classes:3"}, ForgetSpecError, "unknown forget spec kind 'classes'"),
    ({"forget": "ids:1,1"}, ForgetSpecError, r"duplicate ids \[1\]"),
    (
        {"split": {"holdout": 0.5, "test": 0.5}},
        ValueError,
        "split.holdout=0.5 and split.test=0.5 must sum below 1",
    ),
    (
        {"methods": ["finetune"], "stop_at_target": ["nope"]},
        ValueError,
        r"unknown method\(s\) \['nope'\] in stop_at_target",
    ),
    (
        {"method_params": {"tmu": {"bogus": 1}}},
        ValueError,
        r"unknown hyper-parameter\(s\) \['bogus'\]",
    ),
]


@pytest.mark.parametrize("values,error,message", INVALID, ids=[str(v) for v, _, _ in INVALID])
def test_invalid_config_is_rejected_before_any_data_is_loaded(
    values, error, message, tmp_path, monkeypatch
):
    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded before the config was validated")

    monkeypatch.setattr(pipeline.stages, "load_dataset", no_data)
    with pytest.raises(error, match=message):
        validate(tiny_config(**values))
    with pytest.raises(error, match=message):
        execute(tiny_config(**values), store=Store(tmp_path))
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing was stored


# ----------------------------------------------------------------------------- stage values


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> Result:
    """One tiny run of TMU and finetune (no twin-tuned finetune) with 2 gold models."""
    store = Store(tmp_path_factory.mktemp("store"))
    cfg = tiny_config(methods=["tmu", "finetune"], forget="subclass:3:0.5", gold_seeds=2)
    return execute(cfg, store=store)


def test_execute_returns_every_stage_value(result):
    assert isinstance(result.data, Data) and isinstance(result.trained, Trained)
    assert isinstance(result.twin, Twin) and set(result.unlearned) == {"tmu", "finetune"}
    assert result.data.forget == SubclassForget("3", 0.5) and str(result.data.device) == "cpu"
    s = result.data.splits
    assert set(result.data.labels[s.forget]) == {3} and len(s.forget) + len(s.retain) == len(
        s.train
    )
    assert isinstance(result.trained.original, Fitted) and len(result.trained.golds) == 2
    assert list(result.trained.models()) == ["original", "gold_0", "gold_1"]
    assert list(result.models()) == ["original", "gold_0", "gold_1", "tmu", "finetune"]
    assert not result.trained.original.cached and result.trained.original.seconds > 0


def test_stage_values_are_frozen(result):
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.twin = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.unlearned["tmu"].decisions.easy = None  # type: ignore[misc]


def test_twin_holds_the_twin_problem(result):
    twin, data = result.twin, result.data
    s = data.splits
    # A sub-class twin is every holdout sample of the class.
    assert np.array_equal(twin.forget, s.holdout[data.labels[s.holdout] == 3])
    assert np.array_equal(twin.forget, data.forget.twin(data.labels, s.holdout, s.forget, 60, 0))
    assert twin.features.shape == (len(twin.forget), 3) and np.isfinite(twin.features).all()
    # The twin label is "the original gets it right".
    right = predict(result.trained.original.model, data.x, twin.forget, device=data.device).argmax(
        1
    )
    assert np.array_equal(twin.labels, (right == data.labels[twin.forget]).astype(np.int64))
    assert twin.predictor.easy_rate == pytest.approx(twin.labels.mean())
    assert twin.train_embedding.shape == (len(s.train), 128)
    assert set(twin.tuning) == {("tmu", "gain")} and twin.seconds > 0
    tuning = twin.tuning["tmu", "gain"]
    assert tuning.params in METHODS["tmu"].grid and len(tuning.trials) == len(METHODS["tmu"].grid)


def test_unlearned_entries_carry_params_tuning_and_decisions(result):
    tmu, ft = result.unlearned["tmu"], result.unlearned["finetune"]
    assert isinstance(tmu, Unlearned) and isinstance(tmu.decisions, Decisions)
    assert tmu.entry.name == "tmu" and tmu.entry.tuned
    assert tmu.tuning is result.twin.tuning["tmu", "gain"]
    assert tmu.params == {**METHODS["tmu"].defaults, **tmu.tuning.params}
    n_f = len(result.data.splits.forget)
    d = tmu.decisions
    assert d.features.shape == (n_f, 3) and d.proba.shape == (n_f,) and d.easy.shape == (n_f,)
    assert d.easy.dtype == bool and ((d.proba >= 0) & (d.proba <= 1)).all()
    assert tmu.seconds >= d.seconds > 0  # the request's time includes the predictor's
    assert ft.decisions is None and ft.tuning is None and not ft.entry.tuned
    assert ft.params == {**METHODS["finetune"].defaults, "epochs": 1}


def test_evaluate_result_is_build_report_of_the_stage_values(result):
    report, probs = evaluate_result(result)
    assert set(probs) == {"original", "gold_0", "gold_1", "tmu", "finetune"}
    assert probs["tmu"]["forget"].shape == (len(result.data.splits.forget), 10)
    again = build_report(
        result.cfg,
        result.data,
        result.trained,
        result.twin,
        result.decisions,
        result.unlearned,
        model_probs(result.data, result.models()),
    )
    assert again == report
    assert report["methods"] == ["tmu", "finetune"]
    assert report["twin"] == {
        "size": len(result.twin.forget),
        "easy_rate": result.twin.predictor.easy_rate,
        "rule": "gain",
        "threshold": result.twin.predictor.threshold,
        "flip_match": result.twin.predictor.flip_match,
        "flip_label": result.twin.predictor.flip_label,
        "flip_matches": result.twin.predictor.flip_matches,
        "feature_ks": report["twin"]["feature_ks"],
        "true_hard": int((result.twin.labels == 0).sum()),
        "fit": report["twin"]["fit"],
    }
    # The flip label is the policy whose labels land most often on the twin gold's class, and
    # its rate sets the gain rule's threshold.
    matches = report["twin"]["flip_matches"]
    assert set(matches) == {"runner_up", "neighbours"} and all(
        0 <= v <= 1 for v in matches.values()
    )
    assert matches[report["twin"]["flip_label"]] == max(matches.values())
    assert report["twin"]["flip_match"] == matches[report["twin"]["flip_label"]]
    fit, original = report["twin"]["fit"], report["models"]["original"]
    assert fit["mode"] == result.twin.fit.mode in ("finetune", "retrain")
    assert fit["twin_forget"] == result.twin.fit.twin and fit["original_forget"] == pytest.approx(
        original["acc"]["forget"]
    )
    # The target is the original's fit on all of D (a sub-class request mirrors D).
    d = result.data.splits.train
    right = predict(result.trained.original.model, result.data.x, d, device=result.data.device)
    assert fit["target"] == pytest.approx((right.argmax(1) == result.data.labels[d]).mean())
    assert fit["original_train"] == pytest.approx(fit["target"])
    ks = report["twin"]["feature_ks"]
    assert list(ks) == list(result.cfg.features.features) and all(0 <= v <= 1 for v in ks.values())
    assert report["models"]["tmu"]["prep_seconds"] == pytest.approx(
        result.twin.seconds + result.twin.tuning["tmu", "gain"].seconds
    )
    tuning = result.twin.tuning["tmu", "gain"]
    assert report["models"]["tmu"]["twin_tuning"]["chosen"] == tuning.params
    assert report["models"]["tmu"]["params_source"]["oversample"] == "twin"
    assert report["models"]["tmu"]["params_source"]["lr"] == "default"
    assert report["models"]["finetune"]["params_source"] == {"epochs": "user", "lr": "default"}
    assert "prep_seconds" not in report["models"]["finetune"]
    assert report["predictor"]["predicted_hard"] == int(
        (~result.unlearned["tmu"].decisions.easy).sum()
    )


def test_a_second_identical_run_reuses_every_stored_model(tmp_path):
    cfg = tiny_config(methods=["finetune"], gold_seeds=1)
    first, second = (execute(cfg, store=Store(tmp_path)) for _ in range(2))
    assert first.twin is None and second.twin is None
    assert not first.trained.original.cached and not first.unlearned["finetune"].cached
    assert second.trained.original.cached and second.trained.golds[0].cached
    assert second.unlearned["finetune"].cached
    assert second.trained.original.seconds == first.trained.original.seconds  # the stored time
    a, b = (r.unlearned["finetune"].model.state_dict() for r in (first, second))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_progress_reports_every_planned_stage_in_order(tmp_path):
    cfg = tiny_config(methods=["tmu", "finetune"], gold_seeds=1)
    seen = []
    execute(cfg, store=Store(tmp_path), progress=lambda stage, frac: seen.append((stage, frac)))
    stages = list(dict.fromkeys(s for s, _ in seen))
    assert stages == plan_stages(cfg)[:-1]  # "evaluate" is reported by whoever evaluates
    assert all(0.0 <= f <= 1.0 for _, f in seen)
    for stage in stages:
        assert max(f for s, f in seen if s == stage) == pytest.approx(1.0), stage


# ----------------------------------------------------------------------------- behaviour


def test_tuned_variant_reports_the_best_twin_trial(tmp_path):
    cfg = tiny_config(methods=["finetune"], twin_tune=["finetune"], gold_seeds=1)
    report = report_of(execute(cfg, store=Store(tmp_path)))
    tuned, default = report["models"]["finetune+twin"], report["models"]["finetune"]
    assert report["methods"] == ["finetune", "finetune+twin"]
    assert tuned["twin_tuned"] is True and default["twin_tuned"] is False
    trials = tuned["twin_tuning"]["trials"]
    # The user's method_params.finetune.epochs=1 wins: the grid varies only lr.
    assert [t["params"] for t in trials] == [{"epochs": 1, "lr": 0.01}, {"epochs": 1, "lr": 0.04}]
    best = min(trials, key=lambda t: t["score"])
    assert tuned["params"] == tuned["twin_tuning"]["chosen"] == best["params"]
    assert tuned["params_source"] == {"epochs": "user", "lr": "twin"}
    assert default["params"] == {**METHODS["finetune"].defaults, "epochs": 1}


def test_tmu_never_depends_on_the_gold_models(tmp_path):
    """Changing the number of gold models must not change anything TMU does (spec §6)."""
    runs = [
        execute(tiny_config(methods=["tmu"], gold_seeds=k), store=Store(tmp_path / str(k)))
        for k in (1, 2)
    ]
    decisions = [r.unlearned["tmu"].decisions for r in runs]
    np.testing.assert_array_equal(decisions[0].easy, decisions[1].easy)
    np.testing.assert_array_equal(decisions[0].proba, decisions[1].proba)
    np.testing.assert_array_equal(runs[0].twin.forget, runs[1].twin.forget)
    np.testing.assert_array_equal(runs[0].twin.features, runs[1].twin.features)
    assert runs[0].twin.tuning["tmu", "gain"].params == runs[1].twin.tuning["tmu", "gain"].params
    a, b = (r.unlearned["tmu"].model.state_dict() for r in runs)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_whole_class_forget_samples_are_all_predicted_hard(tmp_path):
    """No retained sample of the class: no retrained model can predict it, so TMU flips them all."""
    result = execute(
        tiny_config(methods=["tmu"], forget="class:4", gold_seeds=1), store=Store(tmp_path)
    )
    decisions = result.unlearned["tmu"].decisions
    assert len(decisions.easy) == len(result.data.splits.forget) > 0
    assert not decisions.easy.any()
    assert (decisions.proba == 0).all()
    assert report_of(result)["models"]["tmu"]["acc"]["forget"] < 0.2


def test_whole_class_is_flipped_even_when_the_twin_picks_no_flipping(tmp_path, monkeypatch):
    """The twin's gold saw the class, so its tuning may choose oversample 0; orphans flip anyway."""
    monkeypatch.setattr(METHODS["tmu"], "grid", [{"oversample": 0}])
    cfg = tiny_config(
        methods=["tmu"], forget="class:4", gold_seeds=1, train={"epochs": 8, "batch_size": 32}
    )
    report = report_of(execute(cfg, store=Store(tmp_path)))
    assert (
        report["models"]["original"]["acc"]["forget"] > 0.9
    )  # memorised: there is something to flip
    assert report["models"]["tmu"]["params"]["oversample"] == 0
    assert report["models"]["tmu"]["acc"]["forget"] < 0.1


# ----------------------------------------------------------------------------- mislabeled:F


def test_a_mislabeled_request_trains_on_wrong_labels_and_reports_the_true_ones(tmp_path):
    store = Store(tmp_path)
    cfg = tiny_config(methods=["tmu"], forget="mislabeled:0.1", gold_seeds=2)
    result = execute(cfg, store=store)
    data, s = result.data, result.data.splits
    assert data.relabeled and data.true_labels is not None
    assert np.array_equal(np.flatnonzero(data.labels != data.true_labels), s.forget)
    # The original memorised the wrong labels: it depends on the request, unlike other kinds.
    assert pipeline.base_key(cfg) != pipeline.base_key(tiny_config(forget="random:0.1"))
    # The twin mirrors the request: its labels g are "M_o predicts the twin's wrong label".
    twin_labels = data.forget.twin_labels(data.labels, result.twin.forget, 10, cfg.seed)
    assert (twin_labels[result.twin.forget] != data.labels[result.twin.forget]).all()
    right = data.predict(result.trained.original.model, result.twin.forget).argmax(1)
    assert np.array_equal(result.twin.labels, right == twin_labels[result.twin.forget])
    report = report_of(result)
    assert report["dataset"]["relabeled_forget"] == len(s.forget)
    for entry in [report["models"]["original"], *report["models"]["gold"], report["models"]["tmu"]]:
        assert 0 <= entry["acc_true_forget"] <= 1
    # gold never saw the wrong labels: it predicts the true class far more often than the given
    gold = report["models"]["gold"][0]
    assert gold["acc_true_forget"] > 2 * gold["acc"]["forget"]
    # A loaded run folder gives back the labels the run trained on.
    report, probs = evaluate_result(result)
    loaded = load_run(write_run(result, report, probs, tmp_path / "run"))
    assert np.array_equal(loaded.dataset.tensors[1].numpy(), data.labels)
    plain = report_of(execute(tiny_config(methods=["finetune"], gold_seeds=1), store=store))
    assert plain["dataset"]["relabeled_forget"] == 0
    assert "acc_true_forget" not in plain["models"]["original"]


def test_a_stopped_entry_stops_at_the_twins_estimate(tmp_path):
    cfg = tiny_config(
        methods=["neggrad_plus"],
        stop_at_target=["neggrad_plus"],
        gold_seeds=1,
        method_params={"neggrad_plus": {"epochs": 3, "lr": 0.05}},
    )
    result = execute(cfg, store=Store(tmp_path))
    report = report_of(result)
    assert report["methods"] == ["neggrad_plus", "neggrad_plus+stop"]
    stopped, full = report["models"]["neggrad_plus+stop"], report["models"]["neggrad_plus"]
    assert stopped["target_forget_acc"] == result.twin.predictor.easy_rate
    assert "target_forget_acc" not in full and stopped["params"] == full["params"]
    # Same hyper-parameters; the stopped run ends at the first check at or below the target,
    # while the full run (on this weak tiny original, whose retain fine-tuning lifts D_f) ends
    # far above it.
    target = stopped["target_forget_acc"]
    assert stopped["acc"]["forget"] <= target < full["acc"]["forget"]


def test_the_twin_rule_lets_tmus_twin_tuning_choose_rate_or_gain(tmp_path):
    cfg = tiny_config(methods=["tmu"], gold_seeds=1, predictor={"epochs": 20, "rule": "twin"})
    result = execute(cfg, store=Store(tmp_path))
    tuning, fitted = result.twin.tuning["tmu", "twin"], result.twin.predictor
    grid = len(grid_points(METHODS["tmu"].grid))
    assert [t["rule"] for t in tuning.trials] == ["rate"] * grid + ["gain"] * grid
    best = choose_trial(tuning.trials, METHODS["tmu"].inert, tie_tolerance(len(result.twin.forget)))
    assert tuning.rule == best["rule"] == fitted.rule and tuning.params == best["params"]
    assert result.decisions.rule == fitted.rule  # the choice is made
    easy = result.decisions.easy
    if fitted.rule == "gain":
        assert np.array_equal(easy, result.decisions.proba >= fitted.threshold)
    else:
        assert (~easy).sum() == len(easy) - round(fitted.easy_rate * len(easy))
    assert report_of(result)["twin"]["rule"] == fitted.rule


def test_the_twin_rule_without_tmu_leaves_the_rule_unchosen(tmp_path):
    # Only a twin-tuned baseline: nothing chooses a decision rule, and nothing needs one.
    cfg = tiny_config(
        methods=["finetune"], twin_tune=["finetune"], gold_seeds=1, predictor={"rule": "twin"}
    )
    result = execute(cfg, store=Store(tmp_path))
    assert result.twin.predictor.rule == "twin" and result.decisions is None
    assert set(result.unlearned) == {"finetune", "finetune+twin"}


def test_a_remote_job_checks_only_the_devices_spelling(monkeypatch):
    from tmu.config import RunConfig, from_dict
    from tmu.models import DeviceError
    from tmu.pipeline import validate

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a laptop without CUDA
    cfg = from_dict(RunConfig, {"device": "cuda:1"})
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        validate(cfg)
    validate(cfg, device_here=False)  # a Ray worker's to check
    with pytest.raises(DeviceError, match="unknown device 'gpu0'"):
        validate(from_dict(RunConfig, {"device": "gpu0"}), device_here=False)


def test_an_image_folders_content_is_part_of_the_cache_key(tmp_path):
    """Adding an image to an `imagefolder:` dataset retrains instead of reusing old models."""
    from PIL import Image

    from tmu.config import RunConfig, from_dict
    from tmu.pipeline import base_key

    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.new("L", (8, 8), color=40 * i).save(tmp_path / c / f"{i}.png")
    cfg = from_dict(RunConfig, {"dataset": f"imagefolder:{tmp_path}"})
    before = base_key(cfg)
    assert base_key(cfg) == before  # stable while nothing changes
    Image.new("L", (8, 8), color=200).save(tmp_path / "dog" / "new.png")
    assert base_key(cfg) != before
    digits = from_dict(RunConfig, {"dataset": "digits"})
    assert base_key(digits) == base_key(digits)
