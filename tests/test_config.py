"""Tests for tmu.config: nested dict -> frozen validated dataclasses, unknown keys and wrong types
or
ranges rejected with one message naming the key and value, round-trip."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from tmu.artifacts import config_key
from tmu.config import (
    ConfigError,
    FeatureConfig,
    PredictorConfig,
    RunConfig,
    SplitConfig,
    TrainConfig,
    TwinConfig,
    from_dict,
    to_dict,
)


def test_from_dict_empty_gives_the_class_defaults():
    assert from_dict(RunConfig) == RunConfig()
    assert from_dict(TrainConfig, {}) == TrainConfig()


def test_from_dict_partial_nested_override_keeps_other_defaults():
    cfg = from_dict(RunConfig, {"seed": 7, "train": {"epochs": 2}, "twin": {"min_size": 60}})
    assert cfg.seed == 7
    assert cfg.train.epochs == 2 and cfg.train.lr == TrainConfig().lr
    assert cfg.twin.min_size == 60 and cfg.twin.max_epochs == TwinConfig().max_epochs
    assert isinstance(cfg.split, SplitConfig) and isinstance(cfg.predictor, PredictorConfig)


def test_from_dict_lists_become_tuples():
    cfg = from_dict(
        RunConfig, {"methods": ["tmu", "finetune"], "features": {"features": ["DF", "CF"]}}
    )
    assert cfg.methods == ("tmu", "finetune")
    assert cfg.features.features == ("DF", "CF")


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().seed = 3  # type: ignore[misc]


def test_unknown_top_level_key_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"unknown RunConfig key\(s\) \['epochz'\]"):
        from_dict(RunConfig, {"epochz": 3})


def test_unknown_nested_key_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"unknown TrainConfig key\(s\) \['lrr'\].*valid keys"):
        from_dict(RunConfig, {"train": {"lrr": 0.1}})


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_to_dict_round_trips_through_json():
    cfg = from_dict(
        RunConfig,
        {
            "dataset": "digits",
            "methods": ["tmu"],
            "train": {"epochs": 2},
            "features": {"features": ["DF"], "k": 3},
            "method_params": {"tmu": {"sigma": 0.2}},
        },
    )
    raw = json.loads(json.dumps(to_dict(cfg)))
    assert raw["train"]["epochs"] == 2 and raw["methods"] == ["tmu"]
    assert from_dict(RunConfig, raw) == cfg


def test_feature_config_default_eps_is_4_over_255():
    # The method spec (§4) fixes the PGD radius at 4/255 of the [0, 1] input range.
    assert FeatureConfig().pgd_eps == pytest.approx(4 / 255)


# ----------------------------------------------------------------------------- types and ranges

BAD_VALUES = [
    ({"train": {"epochs": "abc"}}, "train.epochs='abc': Input should be a valid integer"),
    ({"train": {"epochs": 2.5}}, "train.epochs=2.5: Input should be a valid integer"),
    (
        {"train": {"epochs": "3"}},
        "train.epochs='3': Input should be a valid integer",
    ),  # ints are strict
    ({"train": {"epochs": True}}, "train.epochs=True: Input should be a valid integer"),
    ({"train": 5}, "train=5: Input should be a dictionary or an instance of TrainConfig"),
    ({"method_params": {"tmu": 5}}, "method_params.tmu=5: Input should be a valid dictionary"),
    ({"method_params": 5}, "method_params=5: Input should be a valid dictionary"),
    (
        {"train": {"batch_size": -1}},
        "train.batch_size=-1: Input should be greater than or equal to 1",
    ),
    ({"train": {"lr": 0}}, "train.lr=0: Input should be greater than 0"),
    ({"train": {"lr": "fast"}}, "train.lr='fast': Input should be a valid number"),
    ({"train": {"momentum": 1}}, "train.momentum=1: Input should be less than 1"),
    (
        {"train": {"schedule": "cosin"}},
        "train.schedule='cosin': Input should be 'cosine', 'constant' or 'onecycle'",
    ),
    ({"predictor": {"rule": 1}}, "predictor.rule=1: Input should be a valid string"),
    ({"predictor": {"folds": 1}}, "predictor.folds=1: Input should be greater than or equal to 2"),
    ({"split": {"holdout": 0}}, "split.holdout=0: Input should be greater than 0"),
    ({"features": {"features": []}}, "features.features=[]: Tuple should have at least 1 item"),
    ({"seed": -1}, "seed=-1: Input should be greater than or equal to 0"),
    ({"gold_seeds": 0}, "gold_seeds=0: Input should be greater than or equal to 1"),
    ({"methods": "tmu"}, "methods='tmu': Input should be a valid tuple"),
    ({"methods": ["tmu", 3]}, "methods.1=3: Input should be a valid string"),
    ({"forget": 3}, "forget=3: Input should be a valid string"),
]


@pytest.mark.parametrize(
    "values,message", BAD_VALUES, ids=[m.partition(":")[0] for _, m in BAD_VALUES]
)
def test_wrong_type_or_range_is_one_config_error_naming_key_and_value(values, message):
    with pytest.raises(ConfigError) as info:
        from_dict(RunConfig, values)
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text and "pydantic" not in text  # one line, no library boilerplate


def test_several_bad_values_are_reported_in_one_message():
    with pytest.raises(ConfigError) as info:
        from_dict(RunConfig, {"train": {"epochs": "abc", "lr": -1}})
    assert str(info.value) == (
        "train.epochs='abc': Input should be a valid integer; "
        "train.lr=-1: Input should be greater than 0"
    )


def test_nested_class_is_validated_on_its_own():
    with pytest.raises(
        ConfigError, match=r"^schedule='cosin': Input should be 'cosine', 'constant' or 'onecycle'$"
    ):
        from_dict(TrainConfig, {"schedule": "cosin"})


def test_unknown_keys_are_reported_before_types():
    with pytest.raises(ConfigError, match=r"unknown TrainConfig key\(s\) \['lrr'\] in train"):
        from_dict(RunConfig, {"train": {"lrr": 0.1, "epochs": "abc"}})


def test_ints_become_floats_so_that_equal_configs_hash_alike():
    a, b = from_dict(TrainConfig, {"lr": 1, "weight_decay": 0}), from_dict(TrainConfig, {"lr": 1.0})
    assert type(a.lr) is float and a.lr == 1.0 and type(a.weight_decay) is float
    assert to_dict(a)["lr"] == to_dict(b)["lr"] and json.dumps(to_dict(a)["lr"]) == "1.0"
    assert config_key(to_dict(from_dict(TrainConfig, {"lr": 1}))) == config_key(to_dict(b))
    for not_a_number in ("0.5", True):  # numbers are strict: no strings, no booleans
        with pytest.raises(ConfigError, match="lr=.*Input should be a valid number"):
            from_dict(TrainConfig, {"lr": not_a_number})


def test_constructors_and_replace_validate_too():
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        dataclasses.replace(TrainConfig(), epochs=0)
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig(bogus=1)  # type: ignore[call-arg]
    cfg = dataclasses.replace(TrainConfig(), epochs=3, lr=1)
    assert cfg.epochs == 3 and cfg.lr == 1.0 and type(cfg.lr) is float
    assert dataclasses.is_dataclass(cfg) and [f.name for f in dataclasses.fields(cfg)] == [
        "epochs",
        "lr",
        "batch_size",
        "momentum",
        "weight_decay",
        "schedule",
        "label_smoothing",
        "nesterov",
        "amp",
        "channels_last",
        "compile",
        "augment",
    ]


def test_nesterov_needs_momentum():
    with pytest.raises(ConfigError, match=r"nesterov=True needs momentum > 0"):
        from_dict(TrainConfig, {"nesterov": True, "momentum": 0})
    assert from_dict(TrainConfig, {"nesterov": True}).nesterov is True


@pytest.mark.parametrize(
    "values,message",
    [
        ({"compile": "yes"}, "compile='yes': Input should be a valid boolean"),
        ({"amp": "fp16"}, "amp='fp16': Input should be 'auto', 'bf16' or 'off'"),
        ({"augment": "flip"}, "augment='flip': Input should be 'auto', 'none' or 'crop_flip'"),
        ({"label_smoothing": 1}, "label_smoothing=1: Input should be less than 1"),
    ],
)
def test_fast_path_switches_are_validated(values, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        from_dict(TrainConfig, values)


def test_fast_path_defaults_leave_the_cpu_recipe_alone():
    cfg = TrainConfig()
    assert (cfg.label_smoothing, cfg.nesterov, cfg.compile) == (0.0, False, False)
    assert (cfg.amp, cfg.channels_last, cfg.augment) == ("auto", "auto", "auto")
