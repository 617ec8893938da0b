"""Frozen configuration dataclasses, one per pipeline stage, each holding its own defaults.

`RunConfig` gathers them. `from_dict` rebuilds a config from a (possibly partial) nested dict and
rejects unknown keys, so a typo in an override is an error instead of a silently ignored setting.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names it."""


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of the pool held out as H (holdout) and T (test); the rest is D.

    Datasets with an official test split use it as T and draw H from their training part.
    """
    holdout: float = 0.2
    test: float = 0.2


@dataclass(frozen=True)
class TrainConfig:
    """From-scratch training of the original and gold models (SGD with momentum)."""
    epochs: int = 20
    lr: float = 0.05
    batch_size: int = 32
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # "cosine" or "constant"


@dataclass(frozen=True)
class TwinConfig:
    """The twin problem (method spec §3).

    min_size: H_f holds at least this many holdout samples (when H has them) so that the predictor
    sees enough hard examples; otherwise it matches |D_f|.
    The twin model M_t is M_o fine-tuned on H_f plus `retain_per_forget` x |H_f| samples of D per
    epoch until its accuracy on H_f reaches acc(M_o, D) - fit_margin, or max_epochs.
    The curriculum model M_c is a fresh network trained `curriculum_epochs` on D ∪ H_f.
    """
    min_size: int = 500
    max_epochs: int = 10
    fit_margin: float = 0.005
    lr: float = 0.05
    retain_per_forget: float = 1.0
    curriculum_epochs: int = 1
    curriculum_lr: float = 0.05


@dataclass(frozen=True)
class FeatureConfig:
    """The three hardness features (method spec §4)."""
    features: tuple[str, ...] = ("DF", "AF", "CF")
    k: int = 5
    pgd_eps: float = 4 / 255
    pgd_steps: int = 5


@dataclass(frozen=True)
class PredictorConfig:
    """The generalization-label predictor (method spec §5)."""
    kind: str = "mlp"        # a key of tmu.predictor.PREDICTORS
    rule: str = "rate"       # "rate" (rate-matched) or "threshold" (p(easy) >= 0.5)
    folds: int = 3           # out-of-fold predictions on H_f, used to twin-tune the unlearning
    epochs: int = 200
    lr: float = 0.01


@dataclass(frozen=True)
class RunConfig:
    """Everything one `tmu run` needs. `method_params` maps a method name to hyper-parameter
    overrides; `twin_tune` lists the methods that are also run with hyper-parameters chosen on
    the twin problem (reported as NAME+twin next to NAME with its defaults). TMU is always
    twin-tuned."""
    dataset: str = "mnist5k"
    forget: str = "random:0.1"
    seed: int = 0
    methods: tuple[str, ...] = ("tmu", "finetune", "neggrad_plus", "random_label")
    gold_seeds: int = 3
    model: str = "cnn"
    device: str = "auto"
    data_root: str | None = None
    split: SplitConfig = field(default_factory=SplitConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    twin: TwinConfig = field(default_factory=TwinConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    twin_tune: tuple[str, ...] = ()


T = TypeVar("T")


def from_dict(cls: type[T], values: dict[str, Any] | None = None) -> T:
    """Build dataclass `cls` from a nested dict, defaults filling what is missing.

    Raises ConfigError naming any key that `cls` (or a nested config) does not have.
    """
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} key(s) {unknown}; valid keys: {sorted(fields)}")
    kwargs = {}
    for name, value in values.items():
        default = fields[name].default_factory if fields[name].default_factory is not dataclasses.MISSING else None
        if default is not None and dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = from_dict(default, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready nested dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)
