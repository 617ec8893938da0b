"""Wires the stages; each takes the values it needs and returns a frozen dataclass (`values`):

    validate(cfg)                                          -> ForgetSpec        (plan)
    load_data(cfg)                                         -> Data              (stages)
    train_models(cfg, data, store, progress)               -> Trained           (stages)
    prepare_twin(cfg, data, trained.original, store, ...)  -> Twin, or None     (twin_problem)
    decide(cfg, data, original, twin)                      -> Decisions         (twin_problem)
    unlearn(cfg, data, trained, twin, decisions, store, progress) -> {name: Unlearned} (stages)
    report.build_report(cfg, data, trained, twin, decisions, unlearned, probs)

`execute(cfg)` runs them all and returns a `Result`. Costly artifacts (original, golds, twin and
curriculum models, twin features, twin-tuning, every unlearned model) are cached in the run store
by a hash of what produced them, so an identical second run retrains nothing, and says so in the
log and in each model's `cached` field.
"""

from __future__ import annotations

from ..artifacts import Store
from ..config import RunConfig
from .plan import (
    TUNED_SUFFIX,
    Entry,
    gold_seed,
    method_entries,
    needs_predictor,
    needs_twin,
    plan_stages,
    validate,
)
from .stages import (
    base_key,
    load_data,
    pool_inputs,
    quiet,
    train_embedding,
    train_models,
    train_original,
    unlearn,
)
from .twin_problem import decide, hardness, prepare_twin, tune_methods, twin_features
from .values import Data, Decisions, Fitted, Result, StageProgress, Trained, Tuning, Twin, Unlearned


def execute(
    cfg: RunConfig, *, store: Store | None = None, progress: StageProgress | None = None
) -> Result:
    """Run every stage of `cfg` (validated first); returns every stage's value."""
    forget = validate(cfg)
    store, progress = store or Store(), progress or quiet
    data = load_data(cfg, forget)
    trained = train_models(cfg, data, store, progress)
    twin = prepare_twin(cfg, data, trained.original, store, progress) if needs_twin(cfg) else None
    decisions = decide(cfg, data, trained.original.model, twin) if needs_predictor(cfg) else None
    unlearned = unlearn(cfg, data, trained, twin, decisions, store, progress)
    return Result(cfg, data, trained, twin, decisions, unlearned)


__all__ = [
    "TUNED_SUFFIX",
    "Data",
    "Decisions",
    "Entry",
    "Fitted",
    "Result",
    "StageProgress",
    "Trained",
    "Tuning",
    "Twin",
    "Unlearned",
    "base_key",
    "decide",
    "execute",
    "hardness",
    "gold_seed",
    "load_data",
    "method_entries",
    "needs_predictor",
    "needs_twin",
    "plan_stages",
    "pool_inputs",
    "prepare_twin",
    "quiet",
    "train_embedding",
    "train_models",
    "train_original",
    "tune_methods",
    "twin_features",
    "unlearn",
    "validate",
]
