"""A finished run as the result pages show it.

One definition of gold on every view that shows single samples: the **gold ensemble**, whose
prediction for a sample is the class with the highest softmax averaged over the gold seeds, and
whose attribution map is the mean of the gold seeds' maps. The 2×2 alignment table, its
thumbnails, the attributions' "gold" and the disagreements that pick their samples all use it.
(The report's own figures, per-class accuracy and the gaps to gold, are means over the gold
seeds with the seed-to-seed spread, as in report.json.)
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tmu import plots

from .figures import per_run
from .public import public_report

QUADRANTS = ("aligned_easy", "aligned_hard", "over_forgotten", "under_forgotten")


@lru_cache(maxsize=4)
def _load(path: str, mtime: float):
    from tmu.runs import load_run

    return load_run(path)


def _mtime(path) -> float:
    return (Path(path) / "report.json").stat().st_mtime


def load(path: Path):
    """The LoadedRun of a run folder (cached while report.json is unchanged)."""
    return _load(str(path), _mtime(path))


def result_methods(lr) -> list[str]:
    return plots.method_names(lr.report)


def gold_names(lr) -> list[str]:
    return [f"gold_{k}" for k in range(lr.config.gold_seeds)]


def gold_prediction(lr, which: str = "forget") -> np.ndarray:
    """(n,) the gold ensemble's class for each sample of set `which`."""
    return np.mean([lr.predictions[f"{g}/{which}"] for g in gold_names(lr)], 0).argmax(1)


def labels(lr, which: str = "forget") -> np.ndarray:
    return lr.dataset.tensors[1].numpy()[lr.split[which]]


def gold_right(lr, which: str = "forget") -> np.ndarray:
    """(n,) True where the gold ensemble classifies the sample correctly."""
    return gold_prediction(lr, which) == labels(lr, which)


COLOR_BY = {
    "class": "class",
    "hardness": "the twin's p(hard): where a retrained model would likely be wrong",
    "gold": "gold right / wrong on the last run's D_f",
    "agreement": "TMU agrees with gold on the last run's D_f",
}
STATUS_COLORS = ["#d9d9d9", "#2ca02c", "#d62728"]  # not in D_f, yes, no


def forget_status(lr, ids: np.ndarray, by: str) -> tuple[np.ndarray, list[str]]:
    """Groups of the training ids `ids` for the embedding scatter after run `lr`: 0 = not in the
    run's D_f, then for D_f either gold (ensemble) right / wrong (`by="gold"`) or TMU agrees /
    disagrees with gold (`by="agreement"`)."""
    forget = lr.split["forget"]
    if by == "gold":
        yes, names = gold_right(lr), ["not in D_f", "D_f: gold right", "D_f: gold wrong"]
    else:
        tmu = lr.predictions["tmu/forget"].argmax(1)
        yes = tmu == gold_prediction(lr)
        names = ["not in D_f", "D_f: TMU agrees with gold", "D_f: TMU disagrees"]
    groups = np.zeros(len(ids), dtype=np.int64)
    pos = np.searchsorted(forget, ids).clip(0, len(forget) - 1)
    member = forget[pos] == ids
    groups[member] = np.where(yes[pos[member]], 1, 2)
    return groups, names


def color_options(lr, dataset: str, seed: int) -> list[str]:
    """The colourings the embedding offers: by class, and after a run on the same split (same
    dataset and seed) by gold's right / wrong, and by TMU's agreement when the run has TMU."""
    if lr is None or lr.config.dataset != dataset or lr.config.seed != seed:
        return ["class"]
    return ["class", "gold"] + (["agreement"] if "tmu/forget" in lr.predictions else [])


@per_run  # the same loaded run on every rerun (service.load caches it)
def quadrant_ids(lr, method: str) -> dict[str, np.ndarray]:
    """Forget ids per alignment quadrant of `method` against the gold ensemble."""
    ids = lr.split["forget"]
    g, u = gold_right(lr), lr.predictions[f"{method}/forget"].argmax(1) == labels(lr)
    masks = (g & u, ~g & ~u, g & ~u, ~g & u)
    return {q: ids[m] for q, m in zip(QUADRANTS, masks)}


@per_run  # of quadrant_ids, itself memoised: the same table on every rerun
def quadrant_fractions(quadrants: dict[str, np.ndarray]) -> dict[str, float]:
    """The 2×2 table of `quadrant_ids` as fractions of D_f."""
    n = max(sum(len(v) for v in quadrants.values()), 1)
    return {q: len(v) / n for q, v in quadrants.items()}


@per_run  # the same loaded run on every rerun (service.load caches it)
def disagreement_ids(lr, method: str) -> np.ndarray:
    """Forget ids where `method` and the gold ensemble predict different classes."""
    mine = lr.predictions[f"{method}/forget"].argmax(1)
    return lr.split["forget"][mine != gold_prediction(lr)]


@per_run  # the same loaded run on every rerun (service.load caches it)
def predictor_arrays(lr) -> dict | None:
    """Inputs of plots.predictor_view, or None when the run has no predictor (no TMU)."""
    p = lr.predictions
    if "predictor/twin_features_scaled" not in p:
        return None
    has_forget = "predictor/forget_features_scaled" in p
    return {
        "twin_x": p["predictor/twin_features_scaled"],
        "twin_true_easy": p["predictor/twin_g"],
        "twin_pred_easy": p["predictor/twin_oof_easy"].astype(int),
        "forget_x": p["predictor/forget_features_scaled"] if has_forget else None,
        "forget_true_easy": gold_right(lr).astype(int) if has_forget else None,
        "forget_pred_easy": p["predictor/forget_easy"].astype(int) if has_forget else None,
        "features": tuple(lr.config.features.features),
    }


@lru_cache(maxsize=16)
def _explain(path: str, mtime: float, method: str, ids: tuple[int, ...]):
    from tmu.explain import explain

    lr = _load(path, mtime)
    x, y = lr.dataset.tensors
    idx = np.asarray(ids, dtype=np.int64)
    models = {
        "original": lr.models["original"],
        **{g: lr.models[g] for g in gold_names(lr)},
        method: lr.models[method],
    }
    return explain(models, x[idx], y[idx].numpy(), gold=gold_names(lr), ids=idx)


def explain_samples(path: Path, method: str, ids) -> Any:
    """tmu.explain.Explanation of forget ids under original, the gold ensemble and `method`
    (cached)."""
    return _explain(str(path), _mtime(path), method, tuple(int(i) for i in ids))


@per_run  # the same run and explanation on every rerun (both cached)
def attribution_view(lr, exp, n: int) -> tuple[Any, list[str]]:
    """Sample `n` of explanation `exp` (of run `lr`): its attribution grid (plots.attribution_grid)
    and the "MODEL / METHOD" names of its all-zero maps."""
    maps = {m: {k: v[n] for k, v in per.items()} for m, per in exp.maps.items()}
    sims = {m: {k: float(v[n]) for k, v in per.items()} for m, per in exp.similarity.items()}
    zero = {m: {k: bool(v[n]) for k, v in per.items()} for m, per in exp.zero.items()}
    image = lr.dataset.tensors[0][int(exp.ids[n])].numpy()
    zeros = [f"{m} / {k}" for m, per in zero.items() for k, z in per.items() if z]
    return plots.attribution_grid(image, maps, sims, zero), zeros


def compare_table(report: dict) -> pd.DataFrame:
    return pd.DataFrame(plots.compare_rows(report))


def export_html(report: dict) -> str:
    """The run's report as a self-contained HTML page (no server path in it)."""
    report = public_report(report)
    figs = {
        "per_class": plots.per_class_accuracy(report, "forget"),
        "compare": plots.compare_bars(report),
        "mia": plots.mia_figure(report),
    }
    figs.update({f"gaps ({m})": plots.gaps_to_gold(report, m) for m in plots.method_names(report)})
    return plots.html_report(report, figs)


def export_json(report: dict) -> str:
    """The run's report as JSON (no server path in it)."""
    return json.dumps(public_report(report), indent=2)


def export_csv(report: dict) -> str:
    """The methods' comparison table as CSV (no server path in it)."""
    return compare_table(public_report(report)).to_csv(index=False)


@per_run  # the same loaded run on every rerun (service.load caches it)
def gap_views(lr, methods: tuple[str, ...]):
    """Where the gap lives for `methods` (the original first): (GapBins by memorisation on D_f,
    GapBins by distance to D_f or None for a run stored before the view existed, the two-sided
    membership gaps)."""
    from tmu.inspect import by_distance, by_memorisation, membership_gaps

    models = ["original", *methods]
    y = lr.dataset.tensors[1].numpy()
    mem = by_memorisation(lr.predictions, lr.split, y, models)
    near = lr.inspect.neighbourhood if lr.inspect is not None else None
    dist = by_distance(lr.predictions, lr.split, y, near, models) if near is not None else None
    return mem, dist, membership_gaps(lr.report)
