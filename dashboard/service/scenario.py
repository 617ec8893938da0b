"""Scenarios on the dashboard: a `tmu.scenarios` entry as widget settings (dataset, recipe,
label noise, holdout, forget set, methods, decision rules), applied by the Forget set page's
picker, and which scenario the current settings still are."""

from __future__ import annotations

from typing import Any, Callable

from tmu.forget import ForgetSpec, class_id, parse_forget
from tmu.scenarios import SCENARIOS, get_scenario

from .state import CLASSES, MISLABELED, RANDOM, SUBCLASS, Key, State

DEFAULT_HOLDOUT = 0.2

# How each forget kind sets the Forget set page's widgets (a class `*` resolves under the seed;
# `classes()` gives the dataset's class names, loaded only for a kind that names classes).
FORGET_WIDGETS: dict[str, Callable[[Any, Callable[[], tuple[str, ...]], int], dict[str, Any]]] = {
    "random": lambda spec, classes, seed: {
        Key.FORGET_MODE: RANDOM,
        Key.RANDOM_FRACTION: spec.fraction,
    },
    "mislabeled": lambda spec, classes, seed: {
        Key.FORGET_MODE: MISLABELED,
        Key.MISLABELED_FRACTION: spec.fraction,
    },
    "subclass": lambda spec, classes, seed: {
        Key.FORGET_MODE: SUBCLASS,
        Key.SUB_CLASS: class_id(spec.cls, classes(), seed, str(spec)),
        Key.SUB_FRACTION: spec.fraction,
    },
    "class": lambda spec, classes, seed: {
        Key.FORGET_MODE: CLASSES,
        Key.CLASSES: sorted({class_id(c, classes(), seed, str(spec)) for c in spec.classes}),
    },
}


def forget_widgets(
    spec: ForgetSpec, classes: Callable[[], tuple[str, ...]], seed: int
) -> dict[str, Any]:
    """The widget settings that make the Forget set page build `spec`."""
    return FORGET_WIDGETS[spec.kind](spec, classes, seed)


def scenario_widgets(
    name: str, classes: Callable[[str], tuple[str, ...]] | None = None, seed: int = 0
) -> dict[str, Any]:
    """Scenario `name` as widget settings. `classes(dataset)` (the class names) is called only
    for a forget set that names classes."""
    v = get_scenario(name).values
    split, rules = v.get("split", {}), v.get("predictor", {}).get("compare_rules", [])
    spec = parse_forget(v["forget"])
    return {
        Key.DATASET: v["dataset"],
        Key.RECIPE: v.get("recipe", "standard"),
        Key.LABEL_NOISE: float(split.get("label_noise", 0.0)),
        Key.HOLDOUT: float(split.get("holdout", DEFAULT_HOLDOUT)),
        Key.METHODS: list(v["methods"]),
        Key.RATE_RULE: "rate" in rules,
        **forget_widgets(spec, lambda: (classes or pool_classes)(v["dataset"]), seed),
    }


def pool_classes(dataset: str) -> tuple[str, ...]:
    """A dataset's class names (its pool is loaded once per process)."""
    from .data import pool

    return tuple(pool(dataset).classes)


def scenario_names() -> list[str]:
    return list(SCENARIOS)


def scenario_summary(name: str) -> str:
    """What the gold model does in scenario `name`, in a line."""
    return get_scenario(name).summary


def apply_scenario(
    state: State, name: str, classes: Callable[[str], tuple[str, ...]] = pool_classes
) -> None:
    """Set the widgets to scenario `name` (`classes(dataset)` gives a dataset's class names)."""
    state.update(scenario_widgets(name, classes, int(state[Key.SEED])))
    state[Key.SCENARIO] = name


def current_scenario(
    state: State, classes: Callable[[str], tuple[str, ...]] = pool_classes
) -> str | None:
    """The scenario the current settings are (the last one applied, unless a setting was changed
    since), or None."""
    name = state.get(Key.SCENARIO)
    if name not in SCENARIOS:
        return None
    wanted = scenario_widgets(name, classes, int(state[Key.SEED]))
    return name if all(state.get(k) == v for k, v in wanted.items()) else None
