"""Frozen configuration dataclasses, one per pipeline stage, each holding its own defaults.

`RunConfig` gathers them. `from_dict` rebuilds a config from a (possibly partial) nested dict and
rejects unknown keys, so a typo in an override is an error instead of a silently ignored setting.

Values are type- and range-checked when a config is built (pydantic dataclasses: the stdlib
dataclass API, frozen, `dataclasses.asdict` and `replace` unchanged, with validation that reports
the key, the value and the expected type). An int where a float is expected becomes a float, so
that `lr=1` and `lr=1.0` hash alike; a string or a boolean is never taken for a number.
Names that live in registries (methods, models, features, predictors) are checked by
`tmu.pipeline.validate`, which imports those registries.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Annotated, Any, Literal, TypeVar

from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

Positive = Annotated[int, Field(ge=1, strict=True)]
NonNegative = Annotated[int, Field(ge=0, strict=True)]
PositiveFloat = Annotated[float, Field(gt=0, strict=True)]
NonNegativeFloat = Annotated[float, Field(ge=0, strict=True)]
Fraction = Annotated[float, Field(gt=0, lt=1, strict=True)]
StrictBool = Annotated[bool, Field(strict=True)]


config_class = dataclass(frozen=True, config=ConfigDict(extra="forbid"))
"""A frozen, validated dataclass that rejects unknown keyword arguments."""


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names it."""


@config_class
class SplitConfig:
    """Fractions of the pool held out as H (holdout) and T (test); the rest is D.

    Datasets with an official test split use it as T and draw H from their training part.
    label_noise: the fraction of D and of H whose label is replaced by a wrong one before any
    model trains (real data's annotation errors; T keeps true labels, the run record keeps
    both). A random forget request then holds noisy samples that the original memorised and a
    retrained model gets "wrong".
    A larger `holdout` leaves a smaller D: weak data, where a retrained model generalizes less.
    """

    holdout: Fraction = 0.2
    test: Annotated[float, Field(ge=0, lt=1, strict=True)] = 0.2
    label_noise: Annotated[float, Field(ge=0, lt=1, strict=True)] = 0.0


@config_class
class TrainConfig:
    """From-scratch training of the original and gold models (SGD with momentum).

    schedule: per-step lr: cosine annealing to 0, constant, or one-cycle (linear warm-up from
    lr/25 to lr over the first fifth of the steps, then linear decay towards 0; Smith & Topin
    2019, as in Page's fast CIFAR-10 ResNet-9 runs).
    label_smoothing: the weight of the uniform target in the cross-entropy (Szegedy et al., 2016);
    0 = plain labels.
    nesterov: Nesterov momentum (needs momentum > 0).
    The GPU fast path (`tmu.accel`); at their defaults a CPU run trains exactly as without them:
    amp: bf16 autocast of the forward pass and loss; auto = on CUDA only.
    channels_last: the NHWC memory layout for conv models; auto = on CUDA only.
    compile: `torch.compile` the training forward pass (CUDA only; each fit compiles afresh).
    augment: each training image replaced by a random crop of itself zero-padded by 4 pixels,
    mirrored left-right half of the time (He et al., 2016), drawn on the training device;
    auto = on for 3x32x32 colour images (CIFAR-like) on any device, off for every other shape
    (the grayscale datasets).
    """

    epochs: Positive = 20
    lr: PositiveFloat = 0.05
    batch_size: Positive = 32
    momentum: Annotated[float, Field(ge=0, lt=1, strict=True)] = 0.9
    weight_decay: NonNegativeFloat = 5e-4
    schedule: Literal["cosine", "constant", "onecycle"] = "cosine"
    label_smoothing: Annotated[float, Field(ge=0, lt=1, strict=True)] = 0.0
    nesterov: StrictBool = False
    amp: Literal["auto", "bf16", "off"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    compile: StrictBool = False
    augment: Literal["auto", "none", "crop_flip"] = "auto"

    def __post_init__(self) -> None:
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")


@config_class
class TwinConfig:
    """The twin problem (method spec §3).

    min_size: H_f holds at least this many holdout samples (when H has them) so that the predictor
    sees enough hard examples; otherwise it matches |D_f|.
    The twin model M_t must hold H_f the way M_o holds D (`mirror`): "finetune" is M_o
    fine-tuned on H_f plus `retain_per_forget` x |H_f| samples of D per epoch until its accuracy
    on H_f reaches the original's fit (on D; on D_f for a mislabeled request) - fit_margin, or
    max_epochs; "retrain" trains a fresh network on D ∪ H_f with the original's recipe (the
    exact mirror, one more training); "auto" fine-tunes and retrains when that falls short (a
    memorising recipe, label noise).
    The curriculum model M_c is a fresh network trained `curriculum_epochs` on D ∪ H_f.
    """

    min_size: NonNegative = 500
    mirror: Literal["auto", "finetune", "retrain"] = "auto"
    max_epochs: Positive = 10
    fit_margin: NonNegativeFloat = 0.005
    lr: PositiveFloat = 0.05
    retain_per_forget: NonNegativeFloat = 1.0
    curriculum_epochs: Positive = 1
    curriculum_lr: PositiveFloat = 0.05


@config_class
class FeatureConfig:
    """The three hardness features (method spec §4)."""

    features: Annotated[tuple[str, ...], Field(min_length=1)] = (
        "DF",
        "AF",
        "CF",
    )  # keys of FEATURES
    k: Positive = 5
    pgd_eps: NonNegativeFloat = 4 / 255
    pgd_steps: Positive = 5


@config_class
class PredictorConfig:
    """The generalization-label predictor (method spec §5)."""

    kind: str = "mlp"  # a key of tmu.predictor.PREDICTORS
    # a key of tmu.predictor.DECISION_RULES (rate-matched, p(easy) >= 0.5, flip where the twin's
    # expected agreement gain is positive), or "twin": rate or gain, whichever scores better when
    # TMU is twin-tuned with each; checked against the registry by tmu.pipeline.validate
    rule: str = "gain"
    # more rules to run every predictor-using method with, side by side (`tmu+rate` beside `tmu`)
    compare_rules: tuple[str, ...] = ()
    folds: Annotated[int, Field(ge=2, strict=True)] = (
        3  # out-of-fold predictions on H_f, to twin-tune
    )
    epochs: Positive = 200
    lr: PositiveFloat = 0.01


@config_class
class RunConfig:
    """Everything one `tmu run` needs. `method_params` maps a method name to hyper-parameter
    overrides; `twin_tune` lists the methods that are also run with hyper-parameters chosen on
    the twin problem (reported as NAME+twin next to NAME with its defaults), `stop_at_target`
    those also run with their defaults but stopped once their forget-set accuracy reaches the
    twin's estimate of gold's (NAME+stop). TMU is always twin-tuned."""

    dataset: str = "mnist5k"
    forget: str = "random:0.1"  # the text form of a tmu.forget.ForgetSpec
    seed: Annotated[int, Field(ge=0, le=2**32 - 1, strict=True)] = 0  # numpy's and torch's range
    methods: tuple[str, ...] = ("tmu", "finetune", "neggrad_plus", "random_label")
    gold_seeds: Positive = 3
    model: str = "cnn"
    recipe: str = "standard"  # a key of tmu.models.RECIPES: the model's recipe, or "memorise"
    device: str = "auto"
    data_root: str | None = None
    original_weights: str | None = None  # a .pt state_dict used as M_o instead of training one
    split: SplitConfig = field(default_factory=SplitConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    twin: TwinConfig = field(default_factory=TwinConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    twin_tune: tuple[str, ...] = ()
    stop_at_target: tuple[str, ...] = ()


T = TypeVar("T")


def from_dict(cls: type[T], values: dict[str, Any] | None = None) -> T:
    """Build config dataclass `cls` from a nested dict, defaults filling what is missing.

    Raises ConfigError naming any key that `cls` (or a nested config) does not have, and any value
    of the wrong type or out of range, with the key, the value and what was expected. Numbers are
    strict: `true` or `"5"` is not a number (an int does stand for a float).
    """
    values = dict(values or {})
    _check_keys(cls, values, "")
    try:
        return cls(**values)
    except ValidationError as err:
        raise ConfigError(_describe(err)) from None


def _check_keys(cls: type, values: dict[str, Any], prefix: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        where = f" in {prefix.rstrip('.')}" if prefix else ""
        raise ConfigError(
            f"unknown {cls.__name__} key(s) {unknown}{where}; valid keys: {sorted(fields)}"
        )
    for name, value in values.items():
        nested = fields[name].default_factory
        if (
            nested is not dataclasses.MISSING
            and dataclasses.is_dataclass(nested)
            and isinstance(value, dict)
        ):
            _check_keys(nested, value, f"{prefix}{name}.")


def _describe(err: ValidationError) -> str:
    """One line per problem: `KEY=VALUE: what was expected` (pydantic's message)."""
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        parts.append(f"{key}={e['input']!r}: {e['msg']}" if key else e["msg"])
    return "; ".join(parts)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready nested dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)
