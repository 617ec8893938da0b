"""Tests for tmu.config: nested dict -> frozen dataclasses, unknown keys rejected, round-trip."""
from __future__ import annotations

import dataclasses
import json

import pytest

from tmu.config import (ConfigError, FeatureConfig, PredictorConfig, RunConfig, SplitConfig,
                        TrainConfig, TwinConfig, from_dict, to_dict)


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
    cfg = from_dict(RunConfig, {"methods": ["tmu", "finetune"], "features": {"features": ["DF", "CF"]}})
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
    cfg = from_dict(RunConfig, {"dataset": "digits", "methods": ["tmu"], "train": {"epochs": 2},
                                "features": {"features": ["DF"], "k": 3},
                                "method_params": {"tmu": {"sigma": 0.2}}})
    raw = json.loads(json.dumps(to_dict(cfg)))
    assert raw["train"]["epochs"] == 2 and raw["methods"] == ["tmu"]
    assert from_dict(RunConfig, raw) == cfg


def test_feature_config_default_eps_is_4_over_255():
    # The method spec (§4) fixes the PGD radius at 4/255 of the [0, 1] input range.
    assert FeatureConfig().pgd_eps == pytest.approx(4 / 255)
