"""What a run will do, decided from its config alone: the method entries, the stages it reports,
and the validation of every name before any data is loaded."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..config import RunConfig
from ..data import check_dataset_name
from ..features import FEATURES
from ..forget import ForgetSpec, parse_forget
from ..models import MODELS, RECIPES, DeviceError, read_state_dict, resolve_device
from ..predictor import DECISION_RULES, PREDICTORS, TWIN
from ..unlearn import METHODS, get_method

TUNED_SUFFIX = "+twin"
STOP_SUFFIX = "+stop"


@dataclass(frozen=True)
class Entry:
    """One unlearned model of a run: its report name, its method, whether its hyper-parameters are
    chosen on the twin problem (else the method's documented defaults), and whether it stops at
    the twin's estimate of gold's forget accuracy."""

    name: str
    method: str
    tuned: bool
    stopped: bool = False
    rule: str | None = None  # the decision rule of a method that uses the predictor


def method_entries(cfg: RunConfig) -> list[Entry]:
    """Every method with its default hyper-parameters (TMU: always twin-tuned, as the method
    prescribes, with the run's decision rule), then `NAME+RULE` for each other rule of
    `predictor.compare_rules` (methods that use the predictor), then a twin-tuned variant
    `NAME+twin` of each method listed in cfg.twin_tune, then a variant `NAME+stop` of each
    method listed in cfg.stop_at_target."""
    main = cfg.predictor.rule
    rule = {m: main if METHODS[m].needs_predictor else None for m in cfg.methods}
    tunable = [m for m in cfg.methods if not METHODS[m].tuned_by_default and METHODS[m].grid]
    return (
        [Entry(m, m, METHODS[m].tuned_by_default, rule=rule[m]) for m in cfg.methods]
        + [
            Entry(f"{m}+{r}", m, True, rule=r)
            for m in cfg.methods
            if METHODS[m].needs_predictor
            for r in dict.fromkeys(cfg.predictor.compare_rules)
            if r != main
        ]
        + [Entry(m + TUNED_SUFFIX, m, True) for m in tunable if m in cfg.twin_tune]
        + [
            Entry(m + STOP_SUFFIX, m, METHODS[m].tuned_by_default, True, rule[m])
            for m in cfg.methods
            if m in cfg.stop_at_target
        ]
    )


def needs_predictor(cfg: RunConfig) -> bool:
    """Whether a method of the run acts on the predictor's decisions (TMU)."""
    return any(METHODS[m].needs_predictor for m in cfg.methods)


def needs_twin(cfg: RunConfig) -> bool:
    """Whether the run needs the twin problem: for the predictor, or to twin-tune a method."""
    return needs_predictor(cfg) or any(e.tuned or e.stopped for e in method_entries(cfg))


def plan_stages(cfg: RunConfig) -> list[str]:
    """The stage names a run reports progress for, in order."""
    golds = [f"gold {k + 1}/{cfg.gold_seeds}" for k in range(cfg.gold_seeds)]
    twin = ["twin"] if needs_twin(cfg) else []
    return ["original", *golds, *twin, *(e.name for e in method_entries(cfg)), "evaluate"]


def gold_seed(seed: int, k: int) -> int:
    """The seed of the k-th gold model: distinct from the original's and from each other."""
    return 1_000 * (seed + 1) + k


def _known(kind: str, names, registry, where: str = "") -> None:
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError(f"unknown {kind}(s) {unknown}{where}; valid: {sorted(registry)}")


def validate(cfg: RunConfig, device_here: bool = True) -> ForgetSpec:
    """Reject every name that is not in its registry, method hyper-parameters of the wrong name
    or type, an unusable device and a malformed forget spec, before any data is loaded or model
    trained (types and ranges were checked when `cfg` was built). Returns the parsed spec.
    `device_here=False` (the job runs on another machine, e.g. a Ray worker) checks only the
    device's spelling: whether it exists is the worker's to say."""
    if not cfg.methods:
        raise ValueError("no method to run; pass at least one with --methods")
    _known("method", cfg.methods, METHODS)
    _known("method", cfg.twin_tune, METHODS, " in twin_tune")
    _known("method", cfg.stop_at_target, METHODS, " in stop_at_target")
    _known("model", [cfg.model], MODELS)
    _known("recipe", [cfg.recipe], RECIPES)
    _known("predictor", [cfg.predictor.kind], PREDICTORS)
    _known("decision rule", [cfg.predictor.rule], [*DECISION_RULES, TWIN], " in predictor.rule")
    _known("decision rule", cfg.predictor.compare_rules, DECISION_RULES, " in compare_rules")
    _known("feature", cfg.features.features, FEATURES)
    split = cfg.split
    if split.holdout + split.test >= 1:
        raise ValueError(
            f"split.holdout={split.holdout} and split.test={split.test} must sum below 1"
        )
    for name, params in cfg.method_params.items():
        get_method(name, **params)
    check_dataset_name(cfg.dataset)
    if cfg.original_weights:
        read_state_dict(cfg.original_weights)  # exists, holds only tensors; shapes at load
    if device_here:
        resolve_device(cfg.device)
    elif not re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.device):
        raise DeviceError(f"unknown device {cfg.device!r}; use auto, cpu, cuda or cuda:N")
    return parse_forget(cfg.forget)
