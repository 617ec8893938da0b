"""The Inspect page's views of a finished run, each against gold: the prediction matrix (against
the gold ensemble, like every single-sample view), the embedding panels, layer-wise CKA and the
attack. Everything is read from the run folder: the job computed the inspection once
(`inspect.npz`, `tmu.inspect`); a page only slices it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tmu.inspect.attack import SWEEP_ROWS
from tmu.inspect.source import gold_names

from .results import STATUS_COLORS, load
from .figures import per_run

GOLD = "gold"  # the gold ensemble's name in tmu.inspect.prediction_matrix
EMBED_COLORS = {
    "class": "class (training label)",
    "gold": "gold's prediction",
    "agreement": "agreement with gold",
}


def inspection(path):
    """The run's stored `tmu.inspect.Inspection`, or None for a run made before it existed."""
    return load(path).inspect


@per_run  # the same loaded run and inspection on every rerun
def matrices(lr, method: str, cls: int | None = None):
    """(method vs gold, original vs gold) prediction matrices on D_f (or its class `cls`), rows
    the gold ensemble's class."""
    from tmu.inspect import prediction_matrix

    return tuple(prediction_matrix(lr, m, reference=GOLD, cls=cls) for m in (method, "original"))


def cell_from_selection(event, k: int) -> tuple[int, int] | None:
    """(row, col) of the matrix cell a click picked (customdata = row * K + col), or None."""
    from .forget import ids_from_selection

    codes = ids_from_selection(event)
    return divmod(codes[0], k) if codes else None


@dataclass(frozen=True)
class EmbeddingView:
    panels: list[tuple[str, np.ndarray]]
    groups: np.ndarray
    names: list[str]
    colors: list[str] | None
    ids: np.ndarray
    forget: np.ndarray


@per_run  # the same loaded run and inspection on every rerun
def embedding_view(ins, method: str, color: str, classes: list[str]) -> EmbeddingView:
    """Original, `method` and the first gold seed on the run's one projection, coloured by
    `color` (a key of EMBED_COLORS)."""
    e = ins.embedding
    gold = gold_names(e.models)[0]
    panels = [
        ("original", e.of("original")),
        (method, e.of(method)),
        (f"gold (seed {gold.split('_')[1]})", e.of(gold)),
    ]
    if color == "class":
        groups, names, colors = e.labels, list(classes), None
    elif color == "gold":
        groups, names, colors = e.preds[e.index(gold)], list(classes), None
    elif color == "agreement":
        groups = (~e.agrees(method, gold)).astype(int)
        names, colors = ["agrees with gold", "disagrees"], [STATUS_COLORS[1], STATUS_COLORS[2]]
    else:
        raise ValueError(f"unknown colour {color!r}; use one of {list(EMBED_COLORS)}")
    return EmbeddingView(panels, groups, names, colors, e.ids, e.sets == "forget")


@per_run  # the same loaded run and inspection on every rerun
def cka_view(ins, method: str, which: str) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """(layers, {model: CKA to gold per layer} for original and `method`, gold-vs-gold floor)."""
    c = ins.cka
    vs = c.vs_gold(which)
    curves = {m: vs[c.models.index(m)] for m in ("original", method)}
    return list(c.layers), curves, c.noise_floor(which)


def attack_table(ins, method: str) -> pd.DataFrame:
    """Each attack's AUC (D_f vs T) and D_f's member rate (all, easy, hard) for the original,
    `method` and each gold seed."""
    summary = ins.attacks.summary()["models"]
    rows = []
    golds = gold_names(ins.attacks.models)
    for model in ("original", method, *golds):
        for attack, label in (
            ("loss", "loss threshold"),
            ("class_threshold", "per-class threshold"),
            ("lira", "LiRA (gold as OUT models)"),
        ):
            r = summary[model][attack]
            if r is None:
                continue
            rows.append(
                {
                    "model": model,
                    "attack": label,
                    "AUC D_f vs T": r["auc_forget_vs_test"],
                    "D_f flagged": r["forget_member_rate"],
                    "easy flagged": r["easy_member_rate"],
                    "hard flagged": r["hard_member_rate"],
                }
            )
    return pd.DataFrame(rows)


@per_run  # the same loaded run and inspection on every rerun
def attack_curves(ins, method: str) -> dict:
    """The method's loss sweep (D_f, D_r, T, D_f easy, D_f hard), gold's D_f sweep, tau, and the
    ROC curves of the loss attack and LiRA for the method and the first gold seed."""
    a = ins.attacks
    gold = gold_names(a.models)[0]
    mine, ref = a.view(method), a.view(gold)
    labels = {
        "forget": "D_f",
        "retain": "D_r",
        "test": "T",
        "forget_easy": "D_f easy",
        "forget_hard": "D_f hard",
    }
    sweep = mine.sweep
    roc = {
        f"loss · {method}": (sweep.roc_fpr, sweep.roc_tpr, sweep.auc),
        f"loss · {gold}": (ref.sweep.roc_fpr, ref.sweep.roc_tpr, ref.sweep.auc),
    }
    for name, view in ((method, mine), (gold, ref)):
        if view.lira is not None:
            roc[f"LiRA · {name}"] = (view.lira.roc_fpr, view.lira.roc_tpr, view.lira.auc)
    # gold's sweep has its own threshold grid: read its D_f rate at the method's thresholds
    gold_rate = np.interp(
        sweep.thresholds, ref.sweep.thresholds, ref.sweep.member_rate[SWEEP_ROWS.index("forget")]
    )
    return {
        "thresholds": sweep.thresholds,
        "rates": {labels[k]: sweep.member_rate[i] for i, k in enumerate(SWEEP_ROWS)},
        "tau": sweep.tau,
        "gold_forget": gold_rate,
        "roc": roc,
        "riskiest": a.riskiest(method, 12),
        "riskiest_gold": a.riskiest(gold, 12),
        "gold": gold,
        "easy_rule": a.summary()["easy_rule"],
    }


__all__ = [
    "EMBED_COLORS",
    "EmbeddingView",
    "attack_curves",
    "attack_table",
    "cell_from_selection",
    "cka_view",
    "embedding_view",
    "inspection",
    "matrices",
]
