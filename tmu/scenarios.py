"""Scenarios: named forget requests in a regime, each saying what the gold model does there.

A scenario fixes the dataset, the training recipe, the label noise and the forget set, and runs
TMU under both decision rules (`tmu`, the gain rule, beside `tmu+rate`), fine-tuning and one
method that aims at zero accuracy on the forget set (random labels), so that over-forgetting
shows next to alignment. It is a set of config values: `--seed`, `--set` and every explicit
option still apply on top (`scenario_values`). The CLI (`python -m tmu scenarios`, `run
--scenario NAME`) and the dashboard's Forget set page read this one registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .forget import parse_forget

METHODS = ("tmu", "finetune", "random_label")
"""Every scenario's methods: TMU, the usual baseline and a method that aims at zero."""
RULES = {"predictor": {"rule": "gain", "compare_rules": ["rate"]}}


@dataclass(frozen=True)
class Scenario:
    """One named request: `summary` says in a line what the gold model does there; `values`
    are its RunConfig values (dataset, recipe, split, forget, methods, decision rules)."""

    name: str
    summary: str
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def forget(self) -> str:
        return self.values["forget"]

    @property
    def dataset(self) -> str:
        return self.values["dataset"]


def _scenario(name: str, summary: str, **values: Any) -> Scenario:
    parse_forget(values["forget"])  # a typo here fails at import, not in a classroom
    return Scenario(name, summary, {"methods": list(METHODS), **RULES, **values})


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        _scenario(
            "memorised-mislabels",
            "10 % of D carry a wrong label and the original memorised them (memorising recipe); "
            "gold, which never saw them, predicts their true class: almost all of D_f is hard.",
            dataset="mnist5k",
            forget="mislabeled:0.1",
            recipe="memorise",
        ),
        _scenario(
            "noisy-labels",
            "20 % of D and H carry a wrong label and the original memorised them; a random 10 % "
            "request holds about a fifth of noisy samples, which gold gets 'wrong' (it predicts "
            "their true class) while the original fits every label.",
            dataset="mnist5k",
            forget="random:0.1",
            recipe="memorise",
            split={"label_noise": 0.2},
        ),
        _scenario(
            "easy-random",
            "A random 10 % of clean data: gold still gets about 97 % of it right, so there is "
            "almost nothing to undo and any push towards zero is over-forgetting.",
            dataset="mnist5k",
            forget="random:0.1",
        ),
        _scenario(
            "forget-class",
            "One whole class (it changes with the seed): gold never saw the class and gets none "
            "of it right; every forget sample is hard by construction.",
            dataset="mnist5k",
            forget="class:*",
        ),
    )
}
DEFAULT_SCENARIO = "memorised-mislabels"
"""The dashboard's opening demo: among the scenarios where the twin decides what to flip, the one
with the largest gap between the original and gold on D_f (docs/benchmarks.md §12)."""


class ScenarioError(ValueError):
    """An unknown scenario name."""


def register_scenario(name: str, summary: str, **values: Any) -> Scenario:
    """Add scenario `name` (RunConfig `values`: dataset, forget, recipe, split...; the methods and
    decision rules default to every method and gain beside rate) to SCENARIOS, where the CLI's
    `--scenario`, `benchmark --scenarios` and the dashboard's pickers find it. Its forget spec is
    parsed now: a typo fails here. A name that is taken is a ScenarioError."""
    if name in SCENARIOS:
        raise ScenarioError(f"scenario {name!r} is already registered")
    SCENARIOS[name] = _scenario(name, summary, **values)
    return SCENARIOS[name]


def get_scenario(name: str) -> Scenario:
    """The scenario `name`; an unknown name is a ScenarioError listing the valid ones."""
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}; valid: {sorted(SCENARIOS)}")
    return SCENARIOS[name]


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`base` with `top` on top, nested dicts merged key by key (top wins)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def scenario_values(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """RunConfig values of scenario `name` with `overrides` (the user's explicit options and
    `--set` values, nested) on top: a value the user gives always wins."""
    return merge(get_scenario(name).values, overrides or {})


QUICK = {
    "train": {"epochs": 2},
    "twin": {"min_size": 50, "max_epochs": 2},
    "predictor": {"epochs": 20, "folds": 2},
}
"""The quick profile (tests, live demos on slow machines): fewer epochs everywhere."""


def scenario_config(
    name: str, seed: int = 0, overrides: dict[str, Any] | None = None, quick: bool = False
):
    """The RunConfig of scenario `name` as the dashboard's Tour runs it and `python -m tmu
    prepare` stores it (three gold seeds, the device chosen on the machine that runs it), so that
    a prepared lesson is found by the same job key. `overrides` win (e.g. another forget set)."""
    from .config import RunConfig, from_dict
    from .models import apply_recipe

    values = scenario_values(name, merge({"seed": seed, "gold_seeds": 3}, overrides or {}))
    return from_dict(RunConfig, apply_recipe(merge(values, QUICK) if quick else values))
