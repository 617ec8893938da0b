"""End-to-end tests of the command line (`python -m tmu`): the run folder contract of
architecture.md, reuse of stored models, and clean exit-2 errors for bad input."""

from __future__ import annotations

import json
import math
import re
import time

import pytest
import torch

from tmu import cli, pipeline
from tmu.config import ConfigError, RunConfig, from_dict
from tmu.pipeline import plan_stages
from tmu.unlearn import METHODS

SETS = ("forget", "retain", "holdout", "test")
VS_GOLD = {
    "delta_forget",
    "delta_forget_signed",
    "per_class_delta_forget",
    "agreement_forget",
    "activation_distance_forget",
    "js_forget",
    "quadrants",
}
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
    assert 0.0 <= entry["mia"]["forget_member_rate"] <= 1.0
    assert 0.0 <= entry["mia"]["auc_forget_vs_test"] <= 1.0


def test_run_exits_0_and_prints_the_summary(cli_run):
    assert cli_run.first.returncode == 0, cli_run.first.stderr
    assert "Traceback" not in cli_run.first.stderr
    assert (
        "gold-vs-gold" in cli_run.first.stdout
        and f"run folder: {cli_run.out}" in cli_run.first.stdout
    )


def test_report_has_every_key_of_the_contract(report):
    assert {"config", "dataset", "models", "noise_floor", "predictor"} <= set(report)
    assert report["config"]["dataset"] == "digits" and report["config"]["methods"] == list(
        CLI_METHODS
    )
    assert (
        report["config"]["train"]["epochs"] == 2 and report["config"]["forget"] == "subclass:3:0.3"
    )
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
        assert e["vs_gold"]["delta_forget"] == pytest.approx(
            abs(e["vs_gold"]["delta_forget_signed"])
        )
        assert 0.0 <= e["vs_gold"]["agreement_forget"] <= 1.0
        assert e["retrain_time_ratio"] >= 0 and math.isfinite(e["retrain_time_ratio"])
    assert set(report["noise_floor"]) >= {"delta_forget", "agreement_forget"}
    assert set(report["predictor"]) >= {
        "accuracy",
        "balanced_accuracy",
        "predicted_hard",
        "true_hard",
    }
    assert 0.0 <= report["predictor"]["accuracy"] <= 1.0
    assert 0 <= report["predictor"]["predicted_hard"] <= sizes["forget"]


def test_subclass_forget_set_is_all_class_3(report, cli_run):
    split = json.loads((cli_run.out / "split.json").read_text())
    assert {"train", "holdout", "test", "forget", "retain"} <= set(split)
    assert len(split["forget"]) == report["dataset"]["sizes"]["forget"]
    assert set(split["forget"]) <= set(split["train"]) and not set(split["forget"]) & set(
        split["retain"]
    )
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


# ----------------------------------------------------------------------------- progress

STAGE_LINE = re.compile(r"\[(\d+)/(\d+)\] (.+): \d+\.\d s")


def _stage_lines(stderr: str) -> list[tuple[int, int, str]]:
    return [
        (int(m[1]), int(m[2]), m[3]) for m in map(STAGE_LINE.fullmatch, stderr.splitlines()) if m
    ]


def test_progress_in_a_log_is_one_line_per_stage(cli_run, report):
    """stderr is captured (not a terminal): no bar, no carriage return, one line per stage."""
    stages = plan_stages(from_dict(RunConfig, report["config"]))
    assert stages == ["original", "gold 1/2", "gold 2/2", "twin", *CLI_METHODS, "evaluate"]
    expected = [(k, len(stages), s) for k, s in enumerate(stages, 1)]
    err = cli_run.first.stderr
    assert "\r" not in err and "%|" not in err
    lines = err.splitlines()
    assert _stage_lines(err) == expected and len(lines) == len(stages) + 1
    assert re.fullmatch(r"all 9 stages: \d+\.\d s", lines[-1])


def test_a_run_from_stored_models_still_logs_every_stage(cli_run):
    err = cli_run.second.stderr  # -v: INFO lines in between
    assert "\r" not in err
    assert [s for _, _, s in _stage_lines(err)] == [
        "original",
        "gold 1/2",
        "gold 2/2",
        "twin",
        *CLI_METHODS,
        "evaluate",
    ]


def test_stage_log_prints_a_stage_when_the_next_one_starts(capsys):
    log = cli.progress_display(
        ["load", "fit", "save"], quiet=False
    )  # capsys's stderr is no terminal
    assert isinstance(log, cli.StageLog)
    for stage, frac in [("load", 0.0), ("load", 1.0), ("fit", 0.3), ("fit", 0.9), ("save", 1.0)]:
        log(stage, frac)
    assert _stage_lines(capsys.readouterr().err) == [(1, 3, "load"), (2, 3, "fit")]
    log.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and _stage_lines(lines[0]) == [(3, 3, "save")]
    assert re.fullmatch(r"all 3 stages: \d+\.\d s", lines[1])


def test_progress_is_a_bar_on_a_terminal_and_nothing_when_quiet(capsys, monkeypatch):
    assert cli.progress_display(["a"], quiet=True) is None
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: True)
    bar = cli.progress_display(["a", "b"], quiet=False)
    assert isinstance(bar, cli.StageBar)
    bar("a", 1.0)
    bar("b", 0.0)
    assert bar.bar.n == 1
    bar.close()
    err = capsys.readouterr().err
    assert "\r" in err and "100%" in err and not _stage_lines(err)


def test_benchmark_writes_docs_benchmarks_methods_by_default():
    args = cli.build_parser().parse_args(["benchmark"])
    assert args.out == "docs/benchmarks-methods.md" and args.func is cli.cmd_benchmark
    assert cli.build_parser().parse_args(["benchmark", "--out", "x.md"]).out == "x.md"


# ----------------------------------------------------------------------------- bad input

# Every bad value but an unknown class (which needs the dataset's class list) is refused before
# any data is loaded: the config (types, ranges, registry names, device, forget spec) first.
BAD = [
    (["--dataset", "nope"], "unknown dataset 'nope'"),
    (["--dataset", "imagefolder:"], "imagefolder: no path given"),
    (["--forget", "random:1.5"], "fraction 1.5 in forget spec 'random:1.5'"),
    (
        ["--forget", "nope:0.1"],
        "unknown forget spec kind 'nope' in 'nope:0.1'; use random:F, subclass:C:F",
    ),
    (["--forget", "subclass:3"], "forget spec 'subclass:3' must look like subclass:CLASS:FRACTION"),
    (["--forget", "ids:4,5,4"], r"forget spec 'ids:4,5,4': duplicate ids \[4\]"),
    (
        ["--forget", "ids:1,99999999999999999999"],
        r"id 99999999999999999999 is out of range",
    ),
    (["--forget", "ids:/no/such/file.txt"], "id file '/no/such/file.txt'"),
    (["--methods", "scrubz,tmu"], "unknown method.*scrubz"),
    (["--twin-tune", "nope"], r"unknown method\(s\) \['nope'\] in twin_tune"),
    (["--model", "vgg"], r"unknown model\(s\) \['vgg'\]; valid: \['cnn', 'resnet18', 'resnet9'\]"),
    (["--set", "train.bogus=1"], r"unknown TrainConfig key\(s\) \['bogus'\]"),
    (
        ["--set", "method_params.tmu.bogus=1"],
        r"unknown hyper-parameter\(s\) \['bogus'\] for method 'tmu'",
    ),
    (["--set", "train.epochs"], "--set 'train.epochs' must look like SECTION.KEY=VALUE"),
    (["--set", "train.epochs=abc"], "train.epochs='abc': Input should be a valid integer"),
    (["--set", "train=5"], "train=5: Input should be a dictionary or an instance of TrainConfig"),
    (["--set", "method_params.tmu=5"], "method_params.tmu=5: Input should be a valid dictionary"),
    (
        ["--set", "train.batch_size=-1"],
        "train.batch_size=-1: Input should be greater than or equal to 1",
    ),
    (
        ["--set", "train.schedule=cosin"],
        "train.schedule='cosin': Input should be 'cosine', 'constant' or 'onecycle'",
    ),
    (
        ["--set", "predictor.rule=x"],
        r"unknown decision rule\(s\) \['x'\] in predictor.rule; valid: \['gain', 'rate', "
        r"'threshold', 'twin'\]",
    ),
    (
        ["--set", "predictor.kind=x"],
        r"unknown predictor\(s\) \['x'\]; valid: \['logistic', 'mlp'\]",
    ),
    (
        ["--set", 'features.features=["XX"]'],
        r"unknown feature\(s\) \['XX'\]; valid: \['AF', 'CF', 'DF'\]",
    ),
    (["--set", "split.test=0.9"], "split.holdout=0.2 and split.test=0.9 must sum below 1"),
    (["--gold-seeds", "0"], "gold_seeds=0: Input should be greater than or equal to 1"),
    (["--seed", "-1"], "seed=-1: Input should be greater than or equal to 0"),
    (["--device", "cuda:x"], "device 'cuda:x' is malformed"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--scenario", "nope"], r"unknown scenario 'nope'; valid: \['easy-random', "),
    (["--recipe", "forever"], r"unknown recipe\(s\) \['forever'\]; valid: \['memorise'"),
    (["--set", "split.label_noise=1.5"], "split.label_noise=1.5: Input should be less than 1"),
    (
        ["--set", 'predictor.compare_rules=["twin"]'],
        r"unknown decision rule\(s\) \['twin'\] in compare_rules; valid: \['gain', 'rate', "
        r"'threshold'\]",
    ),
]
NEEDS_DATA = [(["--forget", "class:42"], "unknown class 42")]


def _bad_run(extra, tmp_path, capsys) -> str:
    try:
        rc = cli.main(["run", "--dataset", "digits", "-q", "--out", str(tmp_path / "out"), *extra])
    except BaseException as err:  # any escape would be a traceback for the user
        pytest.fail(f"{type(err).__name__} escaped cli.main: {err}")
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err  # exactly one line
    assert err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    return err


@pytest.mark.parametrize("extra,message", BAD, ids=[" ".join(e) for e, _ in BAD])
def test_bad_input_exits_2_with_one_error_line_before_loading_data(
    extra, message, tmp_path, monkeypatch, capsys
):
    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded before the bad input was refused")

    monkeypatch.setenv("TMU_HOME", str(tmp_path / "store"))
    monkeypatch.setattr(pipeline.stages, "load_dataset", no_data)
    start = time.monotonic()
    err = _bad_run(extra, tmp_path, capsys)
    assert time.monotonic() - start < 5.0
    assert re.search(message, err), err
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("extra,message", NEEDS_DATA, ids=[" ".join(e) for e, _ in NEEDS_DATA])
def test_bad_input_found_in_the_data_exits_2_with_one_error_line(
    extra, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("TMU_HOME", str(tmp_path / "store"))
    err = _bad_run(extra, tmp_path, capsys)
    assert re.search(message, err), err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_gpu_exits_2_in_a_real_process(tmp_path, tmu_cmd):
    proc = tmu_cmd(
        ["run", "--dataset", "digits", "--device", "cuda", "-q", "--out", str(tmp_path / "o")],
        tmp_path / "store",
        tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "error: device 'cuda'" in proc.stderr and "no CUDA GPU" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--methods", "scrubz"], "error: unknown method(s) ['scrubz']"),
        (
            ["--set", "train.epochs=abc"],
            "error: train.epochs='abc': Input should be a valid integer",
        ),
    ],
    ids=["unknown-method", "bad-int"],
)
def test_bad_input_exits_2_in_a_real_process(tmp_path, tmu_cmd, extra, message):
    proc = tmu_cmd(
        ["run", "--dataset", "digits", *extra, "-q", "--out", str(tmp_path / "o")],
        tmp_path / "store",
        tmp_path,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert (
        proc.returncode == 2
        and proc.stderr.startswith(message)
        and len(proc.stderr.splitlines()) == 1
    )
    assert not (tmp_path / "o").exists() and not (tmp_path / "store").exists()


def test_parse_overrides():
    assert cli.parse_overrides(
        [
            "train.epochs=3",
            "twin.min_size=100",
            "method_params.tmu.hard_label=random",
            "methods=[\"tmu\"]",
        ]
    ) == {
        "train": {"epochs": 3},
        "twin": {"min_size": 100},
        "method_params": {"tmu": {"hard_label": "random"}},
        "methods": ["tmu"],
    }
    with pytest.raises(ConfigError, match=r"--set '=3' must look like SECTION.KEY=VALUE"):
        cli.parse_overrides(["=3"])


def _summary_report(relabeled: bool) -> dict:
    def model(acc, agree=None):
        e = {"acc": {"forget": acc, "test": 0.9}, "mia": {"forget_member_rate": 0.5}, "seconds": 1}
        if agree is not None:
            e["vs_gold"] = {
                "delta_forget": 0.1,
                "per_class_delta_forget": 0.2,
                "agreement_forget": agree,
            }
            e["retrain_time_ratio"] = 0.05
        if relabeled:
            e["acc_true_forget"] = 0.75
        return e

    return {
        "dataset": {"relabeled_forget": 5 if relabeled else 0},
        "methods": ["tmu"],
        "models": {"original": model(1.0, 0.8), "gold": [model(0.5)], "tmu": model(0.6, 0.95)},
        "noise_floor": {
            "delta_forget": 0.01,
            "per_class_delta_forget": 0.02,
            "agreement_forget": 0.97,
        },
    }


@pytest.mark.parametrize("relabeled", [False, True])
def test_summary_table_columns(relabeled):
    from tmu.cli import summary_table

    lines = summary_table(_summary_report(relabeled)).splitlines()
    head = lines[0].split()
    assert head[:3] == ["model", "acc_f", "true_f"] if relabeled else head[:2] == ["model", "acc_f"]
    assert ("true_f" in head) == relabeled
    tmu = dict(zip(head, lines[3].split()))
    assert tmu["|Δ_f|"] == "0.100" and tmu["cls_Δ"] == "0.200" and tmu["agree"] == "0.950"
    assert tmu.get("true_f") == ("0.750" if relabeled else None)
    floor = lines[4].split()
    assert floor == ["gold-vs-gold", "0.010", "0.020", "0.970"]


def test_a_models_recipe_fills_the_train_keys_the_user_did_not_set():
    args = cli.build_parser().parse_args(
        ["run", "--model", "resnet9", "--set", "train.epochs=3", "--dataset", "digits"]
    )
    cfg = cli.config_from_args(args)
    assert cfg.train.epochs == 3  # the user's value wins
    assert (cfg.train.schedule, cfg.train.batch_size, cfg.train.nesterov) == ("onecycle", 512, True)
    default = cli.config_from_args(cli.build_parser().parse_args(["run"]))
    assert default.train == from_dict(RunConfig).train  # cnn has no recipe


def test_sweep_rejects_bad_seeds_and_names_them(capsys):
    assert cli.main(["sweep", "--seeds", "3-1", "--out", "/tmp/never"]) == 2
    assert "seeds '3-1': '3-1' is not N or N-M (M >= N)" in capsys.readouterr().err


def test_local_sweep_writes_one_row_per_model_and_run(tmp_path):
    sets = ["train.epochs=1", "twin.min_size=40", "twin.max_epochs=1", "predictor.epochs=10"]
    sets += ["predictor.folds=2", "method_params.finetune.epochs=1"]
    args = ["sweep", "--dataset", "digits", "--forget", "class:1", "--seeds", "0-1"]
    args += ["--methods", "finetune", "--gold-seeds", "1", "--device", "cpu", "-q"]
    args += [a for s in sets for a in ("--set", s)]
    args += ["--store", str(tmp_path / "store"), "--out", str(tmp_path / "sweep")]
    assert cli.main(args) == 0
    lines = (tmp_path / "sweep" / "sweep.csv").read_text().splitlines()
    assert lines[0].startswith("dataset,forget,seed,method,acc_forget,acc_retain,acc_test,")
    rows = [line.split(",") for line in lines[1:]]
    assert [(r[2], r[3]) for r in rows] == [
        (s, m) for s in ("0", "1") for m in ("original", "gold_0", "finetune")
    ]
    # whole-class forgetting: gold and fine-tune are at 0 on the forgotten class
    assert all(float(r[4]) == 0.0 for r in rows if r[3] in ("gold_0", "finetune"))
    report = json.loads(
        (tmp_path / "sweep" / "runs" / "digits-class-1-s1" / "report.json").read_text()
    )
    assert report["config"]["seed"] == 1


def test_scenarios_lists_each_with_what_gold_does_and_marks_the_default(capsys):
    from tmu.scenarios import DEFAULT_SCENARIO, SCENARIOS

    assert cli.main(["scenarios"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0].split(" ")[0] for line in lines] == list(SCENARIOS)
    assert [line for line in lines if "default" in line.split(":")[0]] == [
        next(line for line in lines if line.startswith(DEFAULT_SCENARIO))
    ]
    assert all("gold" in line for line in lines)


def test_a_scenario_sets_the_run_and_every_explicit_option_wins():
    parse = lambda *a: cli.config_from_args(cli.build_parser().parse_args(["run", *a]))  # noqa: E731
    cfg = parse("--scenario", "noisy-labels", "--seed", "4")
    assert (cfg.dataset, cfg.forget, cfg.recipe, cfg.seed) == (
        "mnist5k",
        "random:0.1",
        "memorise",
        4,
    )
    assert cfg.split.label_noise == 0.2 and cfg.train.epochs == 80 and cfg.train.weight_decay == 0
    assert cfg.methods == ("tmu", "finetune", "random_label")
    assert (cfg.predictor.rule, cfg.predictor.compare_rules) == ("gain", ("rate",))
    mine = parse(
        "--scenario", "noisy-labels", "--dataset", "digits", "--methods", "tmu",
        "--set", "split.label_noise=0.3", "--set", "train.epochs=5", "--recipe", "standard",
    )  # fmt: skip
    assert (mine.dataset, mine.methods, mine.split.label_noise) == ("digits", ("tmu",), 0.3)
    assert (mine.recipe, mine.train.epochs, mine.train.weight_decay) == ("standard", 5, 5e-4)
    assert mine.forget == "random:0.1" and mine.predictor.compare_rules == ("rate",)
    plain = parse()
    assert (plain.dataset, plain.forget, plain.recipe) == ("mnist5k", "random:0.1", "standard")
