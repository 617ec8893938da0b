"""The Tour: one run's story in seven steps, every number read from its run record, and the link
a teacher sends (the page's state in the URL's query string, each value checked against the
registries: a bad one is a message naming it, never a path and never a traceback).

A Tour run is a scenario's run (`tmu.scenarios.scenario_config`, the config `python -m tmu
prepare` stores), so a prepared lesson is found by its job key without running anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from tmu.forget import ForgetSpecError, class_id, parse_forget
from tmu.jobs import job_key
from tmu.scenarios import DEFAULT_SCENARIO, SCENARIOS, get_scenario, scenario_config
from tmu.unlearn import METHODS

from .data import pool
from .results import gold_prediction, labels

PARAMS = ("scenario", "forget", "seed", "method", "run")
"""The query parameters of a Tour link."""
LINK_KINDS = ("random", "mislabeled", "subclass", "class")
"""Forget kinds a link may name: never `ids` (an id file is a server path)."""
MAX_SEED = 10_000
MAX_FORGET = 64  # characters of a link's forget spec
FRACTIONS = (0.05, 0.1, 0.2)
RUN_ID = re.compile(r"[0-9a-f]{16}")


class LinkError(ValueError):
    """A query parameter that names nothing valid; the message names it."""


@dataclass(frozen=True)
class TourRequest:
    """What a Tour shows: a scenario's run (its forget set may be another of the same kind) with
    a method to contrast with TMU, or a finished run by its id."""

    scenario: str = DEFAULT_SCENARIO
    forget: str | None = None  # None: the scenario's own
    seed: int = 0
    method: str = "finetune"
    run: str | None = None  # a finished run's id (its folder name), shown as it is


def _shown(value: str) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:40] + "...")


def check_forget_text(text: str, scenario: str) -> str:
    """A link's forget spec, if it is a forget set of a kind a link may name and of the
    scenario's own kind; LinkError naming it otherwise."""
    kind = str(text).partition(":")[0]
    if kind not in LINK_KINDS or len(str(text)) > MAX_FORGET:
        raise LinkError(
            f"forget={_shown(text)}: a link names one of {list(LINK_KINDS)} in at most "
            f"{MAX_FORGET} characters"
        )
    sc = get_scenario(scenario)
    try:
        spec = parse_forget(text)
        for token in getattr(spec, "classes", ()) or [getattr(spec, "cls", "*")]:
            class_id(token, tuple(pool(sc.dataset).classes), 0, str(spec))
    except ForgetSpecError as err:
        raise LinkError(f"forget={_shown(text)}: {err}") from None
    own = parse_forget(sc.forget).kind
    if spec.kind != own:
        raise LinkError(f"forget={_shown(text)}: scenario {scenario!r} forgets by {own!r}")
    return str(spec)


def parse_link(params: Mapping[str, Any]) -> TourRequest:
    """The TourRequest of a URL's query parameters (missing ones take their defaults); a bad
    value is a LinkError naming the parameter and the value, an unknown parameter too."""
    extra = sorted(set(params) - set(PARAMS))
    if extra:
        raise LinkError(f"unknown link parameter(s) {extra}; a Tour link has {list(PARAMS)}")
    get = lambda k: params.get(k)  # noqa: E731
    scenario = get("scenario") or DEFAULT_SCENARIO
    if scenario not in SCENARIOS:
        raise LinkError(f"scenario={_shown(scenario)} is unknown; valid: {sorted(SCENARIOS)}")
    seed_text = get("seed") or "0"
    if not (str(seed_text).isascii() and str(seed_text).isdigit()) or int(seed_text) > MAX_SEED:
        raise LinkError(f"seed={_shown(seed_text)}: a seed is an integer 0..{MAX_SEED}")
    method = get("method") or "finetune"
    if method not in METHODS or method == "tmu":
        valid = sorted(m for m in METHODS if m != "tmu")
        raise LinkError(f"method={_shown(method)}: the method to contrast is one of {valid}")
    run = get("run")
    if run is not None and not RUN_ID.fullmatch(str(run)):
        raise LinkError(f"run={_shown(run)}: a run is named by its 16-hex-digit id")
    forget = get("forget")
    forget = check_forget_text(forget, scenario) if forget else None
    return TourRequest(scenario, forget, int(seed_text), method, run)


def link_of(req: TourRequest) -> dict[str, str]:
    """The query parameters of `req` (defaults left out, so links stay short)."""
    out = {"scenario": req.scenario, "seed": str(req.seed)}
    if req.forget and req.forget != get_scenario(req.scenario).forget:
        out["forget"] = req.forget
    if req.method != "finetune":
        out["method"] = req.method
    if req.run:
        out["run"] = req.run
    return out


def forget_choices(scenario: str, num_classes: int = 10) -> list[str]:
    """The forget sets the Tour offers for a scenario: its own, and the same kind at a few
    fractions (or each class, for a class scenario)."""
    own = parse_forget(get_scenario(scenario).forget)
    if own.kind == "class":
        others = [f"class:{c}" for c in range(num_classes)]
    elif own.kind == "subclass":
        others = [f"subclass:{own.cls}:{f:g}" for f in FRACTIONS]
    else:
        others = [f"{own.kind}:{f:g}" for f in FRACTIONS]
    return list(dict.fromkeys([str(own), *others]))


def tour_config(req: TourRequest, quick: bool = False):
    """The RunConfig of a Tour request (the scenario's, with its forget set): the one `python -m
    tmu prepare --scenario NAME --seeds SEED` stores."""
    overrides = {"forget": req.forget} if req.forget else {}
    return scenario_config(req.scenario, req.seed, overrides, quick=quick)


def stored_run(root: Path, cfg) -> Path | None:
    """The finished run folder of `cfg` in the store at `root`, or None."""
    folder = Path(root) / "jobs" / job_key("run", cfg)
    return folder if (folder / "report.json").is_file() else None


def run_by_id(root: Path, run_id: str) -> Path | None:
    """A finished run folder by its id (the name was checked: 16 hex digits, never a path)."""
    folder = Path(root) / "jobs" / run_id
    return folder if RUN_ID.fullmatch(run_id) and (folder / "report.json").is_file() else None


# ---------------------------------------------------------------- the story


@dataclass(frozen=True)
class Step:
    """One step of the story: its title, its text (markdown, every number from `facts`), and the
    facts: name -> (value, path of the value in report.json)."""

    title: str
    text: str
    facts: dict[str, tuple[Any, tuple]] = field(default_factory=dict)
    missing: str | None = None  # why the run cannot tell this step (no TMU, no twin)


def at(report: dict, path: tuple) -> Any:
    """The value at `path` (keys and list indices) in `report`."""
    node = report
    for k in path:
        node = node[k]
    return node


def _facts(report: dict, **paths: tuple) -> dict[str, tuple[Any, tuple]]:
    return {name: (at(report, path), path) for name, path in paths.items()}


def _v(facts: dict, name: str) -> Any:
    return facts[name][0]


def gold_mean(report: dict, key: str) -> float:
    return float(np.mean([at(g, ("acc", key)) for g in report["models"]["gold"]]))


def zero_method(report: dict) -> str | None:
    """The run's method that aims at zero on D_f: random labels if it ran, else the one with the
    lowest forget accuracy other than TMU and the contrast."""
    methods = [m for m in report["methods"] if not m.startswith("tmu")]
    if "random_label" in methods:
        return "random_label"
    return min(methods, key=lambda m: report["models"][m]["acc"]["forget"], default=None)


def step_asked(report: dict, scenario: str | None) -> Step:
    f = _facts(
        report, n_forget=("dataset", "sizes", "forget"), n_train=("dataset", "sizes", "train")
    )
    question = SCENARIOS[scenario].summary if scenario in SCENARIOS else ""
    forget = report["config"]["forget"]
    text = (
        f"Someone asks to remove **{_v(f, 'n_forget')}** of the **{_v(f, 'n_train')}** training "
        f"samples (`{forget}`). " + question
    )
    return Step("1. What was asked", text, f)


def step_gold(report: dict) -> Step:
    f = _facts(
        report,
        original=("models", "original", "acc", "forget"),
        **{
            f"gold_{k}": ("models", "gold", k, "acc", "forget")
            for k in range(len(report["models"]["gold"]))
        },
    )
    golds = [_v(f, k) for k in f if k.startswith("gold_")]
    span = f"{min(golds):.1%}" if min(golds) == max(golds) else f"{min(golds):.1%}–{max(golds):.1%}"
    text = (
        f"The original model, trained on all of D, gets **{_v(f, 'original'):.1%}** of the "
        f"forget set right (against its training labels). Models retrained without it — the "
        f"gold models — get **{span}** right "
        f"({len(golds)} seed(s)): a retrained model still classifies whatever it can learn from "
        "the rest of the data, and misses what only memorising the forget set taught."
    )
    return Step("2. What the gold model does", text, f)


def step_zero(report: dict) -> Step:
    zero = zero_method(report)
    if zero is None:
        return Step("3. Why not zero", "", missing="this run has no baseline that aims at zero")
    f = _facts(
        report,
        zero_acc=("models", zero, "acc", "forget"),
        zero_member=("models", zero, "mia", "forget_member_rate"),
        **{
            f"gold_member_{k}": ("models", "gold", k, "mia", "forget_member_rate")
            for k in range(len(report["models"]["gold"]))
        },
    )
    gm = [v for k, (v, _) in f.items() if k.startswith("gold_member_")]
    gold_acc = gold_mean(report, "forget")
    side = (
        "below"
        if _v(f, "zero_member") < min(gm)
        else "above"
        if _v(f, "zero_member") > max(gm)
        else "within"
    )
    text = (
        f"`{zero}` pushes the forget set towards zero: **{_v(f, 'zero_acc'):.1%}** right where "
        f"gold gets {gold_acc:.1%}. An attacker's loss-threshold test flags "
        f"**{_v(f, 'zero_member'):.1%}** of the forget set as members under `{zero}`, {side} "
        "gold's "
        f"{min(gm):.1%}–{max(gm):.1%}: forgetting more than a retrained model would is as visible "
        "as forgetting less."
    )
    return Step("3. Why not zero", text, f)


def step_twin(report: dict) -> Step:
    if "twin" not in report or "fit" not in report["twin"]:
        return Step("4. The twin problem", "", missing="this run has no twin problem (no TMU)")
    f = _facts(
        report,
        size=("twin", "size"),
        twin_fit=("twin", "fit", "twin_forget"),
        twin_gold=("twin", "easy_rate"),
        original=("models", "original", "acc", "forget"),
    )
    mode = report["twin"]["fit"]["mode"]
    made = (
        "retrained from scratch on D ∪ H_f"
        if mode == "retrain"
        else "the original fine-tuned on H_f"
    )
    real_gap = _v(f, "original") - gold_mean(report, "forget")
    twin_gap = _v(f, "twin_fit") - _v(f, "twin_gold")
    text = (
        f"TMU never sees a gold model. It builds a twin problem whose gold is known for free: "
        f"**{_v(f, 'size')}** held-out samples H_f, drawn like the forget set, learnt by a twin "
        f"model ({made}), which fits them at **{_v(f, 'twin_fit'):.1%}**. The original never saw "
        f"them: it is the twin's gold, and gets **{_v(f, 'twin_gold'):.1%}** right. The twin's gap "
        f"({twin_gap:+.1%}) stands in for the real one ({real_gap:+.1%}), which only a retrain "
        "reveals."
    )
    return Step("4. The twin problem", text, f)


def step_learns(report: dict) -> Step:
    if "predictor" not in report:
        return Step("5. What the twin learns", "", missing="this run has no predictor (no TMU)")
    f = _facts(
        report,
        easy_rate=("twin", "easy_rate"),
        n_forget=("dataset", "sizes", "forget"),
        true_hard=("predictor", "true_hard"),
        auroc=("predictor", "auroc"),
    )
    estimate = (1 - _v(f, "easy_rate")) * _v(f, "n_forget")
    auroc = _v(f, "auroc")
    text = (
        "Three features say how hard a sample is: its distance to its class in the embedding "
        "(DF), how much a small adversarial push changes its prediction (AF), and its loss under "
        "a briefly trained model (CF). A small predictor learns, on the twin, which samples the "
        f"twin's gold gets wrong. Before anything is unlearned it estimates that a retrained "
        f"model gets **{estimate:.0f} of {_v(f, 'n_forget')}** forget samples wrong; the gold "
        f"models, trained afterwards to check, get **{_v(f, 'true_hard'):g}** wrong"
        + (f" (AUROC of the predictor against them: {auroc:.2f})." if auroc is not None else ".")
    )
    return Step("5. What the twin learns", text, f)


def step_flips(report: dict) -> Step:
    if "tmu" not in report["models"] or "flips" not in report["models"]["tmu"]:
        return Step("6. The flips", "", missing="this run has no TMU")
    f = _facts(
        report,
        flips=("models", "tmu", "flips", "flips"),
        moved=("models", "tmu", "flips", "moved"),
        on_gold=("models", "tmu", "flips", "on_gold"),
        policy=("twin", "flip_label"),
    )
    how = {
        "runner_up": "its runner-up class",
        "neighbours": "the class of its nearest retained samples",
    }
    text = (
        f"TMU flips **{_v(f, 'flips')}** forget samples, the ones it predicts gold gets wrong, "
        f"each to {how.get(_v(f, 'policy'), _v(f, 'policy'))} (the twin's choice); "
        f"**{_v(f, 'moved')}** of them moved off their label, and **{_v(f, 'on_gold')}** flip "
        "labels are the gold ensemble's own class. It leaves the rest to what the model keeps "
        "of them by generalization, as a retrained model would."
    )
    return Step("6. The flips", text, f)


def step_result(report: dict, contrast: str) -> Step:
    if "tmu" not in report["models"]:
        return Step("7. The result", "", missing="this run has no TMU")
    f = _facts(
        report,
        tmu_acc=("models", "tmu", "acc", "forget"),
        tmu_agree=("models", "tmu", "vs_gold", "agreement_forget"),
        other_acc=("models", contrast, "acc", "forget"),
        other_agree=("models", contrast, "vs_gold", "agreement_forget"),
        original_agree=("models", "original", "vs_gold", "agreement_forget"),
    )
    floor = (report.get("noise_floor") or {}).get("agreement_forget")
    text = (
        f"After unlearning, TMU gets **{_v(f, 'tmu_acc'):.1%}** of the forget set right (gold "
        f"{gold_mean(report, 'forget'):.1%}, `{contrast}` {_v(f, 'other_acc'):.1%}) and predicts "
        f"gold's class on **{_v(f, 'tmu_agree'):.1%}** of it, against "
        f"**{_v(f, 'other_agree'):.1%}** for `{contrast}` and "
        f"{_v(f, 'original_agree'):.1%} for the untouched original"
        + (f"; one gold model agrees with another on {floor:.1%}." if floor is not None else ".")
    )
    return Step("7. The result", text, f)


def tour_steps(report: dict, contrast: str, scenario: str | None) -> list[Step]:
    """The seven steps of a run's story (a step the run cannot tell says why)."""
    return [
        step_asked(report, scenario),
        step_gold(report),
        step_zero(report),
        step_twin(report),
        step_learns(report),
        step_flips(report),
        step_result(report, contrast),
    ]


def scenario_of(config) -> str | None:
    """The scenario a run's config is (its forget set aside), or None."""
    for name, sc in SCENARIOS.items():
        v = sc.values
        same = (
            config.dataset == v["dataset"]
            and config.recipe == v.get("recipe", "standard")
            and config.split.label_noise == v.get("split", {}).get("label_noise", 0.0)
            and parse_forget(config.forget).kind == parse_forget(v["forget"]).kind
        )
        if same:
            return name
    return None


def flipped_samples(lr, n: int = 12) -> dict[str, np.ndarray] | None:
    """`n` of TMU's flipped forget samples, spread over D_f: ids, given label, flip label, the gold
    ensemble's class and p(hard); None when the run stores no flips."""
    p = lr.predictions
    if "tmu/flipped" not in p:
        return None
    flipped = np.flatnonzero(p["tmu/flipped"].astype(bool))
    at = (
        flipped[np.unique(np.linspace(0, len(flipped) - 1, n).round().astype(int))]
        if len(flipped)
        else flipped
    )  # spread over D_f (its ids are sorted, often by class)
    proba = p.get("predictor/forget_proba")
    return {
        "ids": lr.split["forget"][at],
        "given": labels(lr)[at],
        "flip": p["tmu/flip_label"][at],
        "gold": gold_prediction(lr)[at],
        "p_hard": (1 - proba[at]) if proba is not None else np.full(len(at), np.nan),
    }


def twin_roc(lr) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The predictor's ROC on the twin (out-of-fold p(hard) against "the twin's gold gets it
    wrong"): (false positive rates, true positive rates, AUC); None without both labels."""
    p = lr.predictions
    if "predictor/twin_oof_proba" not in p:
        return None
    hard = 1 - p["predictor/twin_g"]
    if hard.min() == hard.max():
        return None
    from sklearn.metrics import roc_auc_score, roc_curve

    score = 1 - p["predictor/twin_oof_proba"]
    fpr, tpr, _ = roc_curve(hard, score)
    return fpr, tpr, float(roc_auc_score(hard, score))


# ---------------------------------------------------------------- the page's pieces


def contrast_methods() -> list[str]:
    """The methods a Tour may contrast with TMU (those every scenario runs first)."""
    return [m for m in SCENARIOS[DEFAULT_SCENARIO].values["methods"] if m != "tmu"]


def tour_run(state, req: TourRequest) -> Path | None:
    """The finished run a Tour request shows: the run a link names by id, else the stored run of
    the request's scenario config, else None."""
    from .runs import backend
    from .state import Key

    root = backend().root
    if req.run:
        return run_by_id(root, req.run)
    return stored_run(root, tour_config(req, bool(state.get(Key.QUICK))))


def tour_figures(lr, contrast: str) -> dict[str, list[tuple[str, Any]]]:
    """The figures of each step (by the step's number): ("chart", plotly figure) or ("images",
    (images, captions))."""
    from tmu import plots

    from .data import images, pool
    from .results import gap_views, predictor_arrays, quadrant_fractions, quadrant_ids

    report, dataset = lr.report, lr.config.dataset
    forget = lr.split["forget"]
    given = labels(lr)
    classes = [str(c) for c in report["dataset"]["classes"]]
    counts = np.bincount(given, minlength=len(classes))
    shown = np.unique(np.linspace(0, len(forget) - 1, 16).round().astype(int))  # across D_f
    truth = pool(dataset).y.numpy()[forget[shown]]
    names = pool(dataset).classes
    captions = [
        f"{i}: {names[t]}→{names[g]}" if t != g else str(i)
        for i, t, g in zip(forget[shown], truth, given[shown])
    ]
    out: dict[str, list] = {
        "1": [
            ("images", (images(dataset, forget[shown]), captions)),
            (
                "chart",
                plots.class_counts(counts, classes).update_layout(title="Forget set per class"),
            ),
        ],
        "2": [("chart", plots.per_class_accuracy(report, "forget", methods=[]))],
    }
    zero = zero_method(report)
    if zero is not None:
        shown = [m for m in (zero, "tmu") if m in report["models"]]
        out["3"] = [("chart", plots.mia_figure(report, methods=shown))]
    arrays = predictor_arrays(lr)
    roc = twin_roc(lr)
    out["5"] = ([("chart", plots.predictor_roc(*roc))] if roc else []) + (
        [("chart", plots.predictor_view(**arrays))] if arrays else []
    )
    flipped = flipped_samples(lr)
    if flipped is not None and len(flipped["ids"]):
        captions = [
            f"{i}: {names[g]}→{names[f]} (gold {names[o]}, p(hard) {ph:.2f})"
            for i, g, f, o, ph in zip(
                *(flipped[k] for k in ("ids", "given", "flip", "gold", "p_hard"))
            )
        ]
        out["6"] = [("images", (images(dataset, flipped["ids"]), captions))]
    if "tmu" in report["models"]:
        quads = quadrant_ids(lr, "tmu")
        out["7"] = [
            ("chart", plots.per_class_accuracy(report, "forget", methods=["tmu", contrast])),
            ("chart", plots.quadrant_table(quadrant_fractions(quads), len(forget))),
        ]
        mem, dist, member = gap_views(lr, ("tmu", contrast))
        out["7"] += [("chart", plots.gap_bins(mem))]
        out["7"] += [("chart", plots.gap_bins(dist))] if dist is not None else []
        out["7"] += [("chart", plots.membership_two_sided(member))]
    return out
