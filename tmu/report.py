"""Evaluate the models of a finished run against the gold models and assemble `report.json`
(the contract in architecture.md)."""

from __future__ import annotations

import numpy as np
from torch import nn

from . import evaluate as ev
from .config import RunConfig, to_dict
from .pipeline import Data, Decisions, Result, Trained, Tuning, Twin, Unlearned

Probs = dict[str, dict[str, np.ndarray]]
"""Softmax outputs by model name, then data role (ev.SETS): arrays of shape (n, K)."""


def model_probs(data: Data, models: dict[str, nn.Module]) -> Probs:
    """Softmax outputs of every model on each data role."""
    sets = {k: getattr(data.splits, k) for k in ev.SETS}
    return {
        name: {k: data.predict(m, ids) for k, ids in sets.items()} for name, m in models.items()
    }


def build_report(
    cfg: RunConfig,
    data: Data,
    trained: Trained,
    twin: Twin | None,
    decisions: Decisions | None,
    unlearned: dict[str, Unlearned],
    probs: Probs,
) -> dict:
    """The full report of a run (see architecture.md for the schema)."""
    s, k_cls = data.splits, data.pool.num_classes
    y = {k: data.labels[getattr(s, k)] for k in ev.SETS}
    golds = [probs[f"gold_{k}"]["forget"] for k in range(len(trained.golds))]
    gold_seconds = float(np.mean([g.seconds for g in trained.golds]))

    truth = data.true_labels[s.forget] if data.relabeled else None

    def entry(name: str, seconds: float, cached: bool) -> dict:
        out = {**ev.model_summary(probs[name], y, k_cls), "seconds": seconds, "cached": cached}
        if truth is not None:  # mislabeled: also score D_f against the labels before corruption
            out["acc_true_forget"] = ev.accuracy(probs[name]["forget"], truth)
        return out

    models = {
        "original": entry("original", trained.original.seconds, trained.original.cached),
        "gold": [entry(f"gold_{k}", g.seconds, g.cached) for k, g in enumerate(trained.golds)],
    }
    ensemble = np.mean(golds, axis=0) if golds else None
    for name, u in unlearned.items():
        out = entry(name, u.seconds, u.cached)
        out["method"], out["twin_tuned"], out["params"] = u.entry.method, u.entry.tuned, u.params
        out["params_source"] = params_source(
            u.params, cfg.method_params.get(u.entry.method, {}), u.tuning
        )
        if u.entry.stopped:  # stopped at the twin's estimate of gold's forget accuracy
            out["target_forget_acc"] = twin.predictor.easy_rate
        out["vs_gold"] = ev.vs_golds(probs[name]["forget"], golds, y["forget"], k_cls)
        out["retrain_time_ratio"] = out["seconds"] / gold_seconds
        if u.tuning is not None:
            out["twin_tuning"] = {
                "chosen": u.tuning.params,
                "trials": u.tuning.trials,
                "seconds": u.tuning.seconds,
            }
        if u.decisions is not None:
            out["rule"] = u.decisions.rule
            out["predicted_hard"] = int((~u.decisions.easy).sum())
            out["prep_seconds"] = twin.seconds + (u.tuning.seconds if u.tuning else 0.0)
            out["prep_retrain_time_ratio"] = out["prep_seconds"] / gold_seconds
        if u.flips is not None:
            out["flips"] = ev.flip_effect(probs[name]["forget"], y["forget"], *u.flips, ensemble)
        models[name] = out
    models["original"]["vs_gold"] = ev.vs_golds(
        probs["original"]["forget"], golds, y["forget"], k_cls
    )

    report = {
        "config": to_dict(cfg),
        "dataset": {
            "name": cfg.dataset,
            "classes": list(data.pool.classes),
            "sizes": {
                "train": len(s.train),
                "holdout": len(s.holdout),
                "test": len(s.test),
                "forget": len(s.forget),
                "retain": len(s.retain),
            },
            "relabeled_forget": int((truth != y["forget"]).sum()) if truth is not None else 0,
        },
        "device": str(data.device),
        "methods": list(unlearned),
        "models": models,
        "noise_floor": ev.noise_floor(golds, y["forget"], k_cls),
        "gold_seconds": gold_seconds,
    }
    if twin is not None:
        report["twin"] = {
            "size": len(twin.forget),
            "easy_rate": twin.predictor.easy_rate,
            "rule": twin.predictor.rule,
            "threshold": twin.predictor.threshold,
            "flip_match": twin.predictor.flip_match,
            "flip_label": twin.predictor.flip_label,
            "flip_matches": twin.predictor.flip_matches,
            "true_hard": int((twin.labels == 0).sum()),
            "fit": twin_fit(twin, models["original"], report["dataset"]["sizes"]),
        }
    if decisions is not None:
        report["predictor"] = ev.predictor_quality(
            decisions.easy, golds, y["forget"], decisions.proba
        )
        report["twin"]["feature_ks"] = ev.feature_shift(
            twin.features, decisions.features, list(cfg.features.features)
        )
    return report


def twin_fit(twin: Twin, original: dict, sizes: dict) -> dict:
    """How the twin model fits H_f beside how the original fits D and D_f (method spec §3: H_f
    must be members of M_t the way D are members of M_o): `mode` (finetune | retrain),
    `epochs`, `twin_forget` = acc(M_t, H_f), `target` (the original's fit it had to reach),
    `original_train` = acc(M_o, D), `original_forget` = acc(M_o, D_f)."""
    acc, n_f, n_r = original["acc"], sizes["forget"], sizes["retain"]
    return {
        "mode": twin.fit.mode,
        "epochs": twin.fit.epochs,
        "twin_forget": twin.fit.twin,
        "target": twin.fit.target,
        "original_train": (acc["forget"] * n_f + acc["retain"] * n_r) / (n_f + n_r),
        "original_forget": acc["forget"],
    }


def params_source(params: dict, user: dict, tuning: Tuning | None) -> dict[str, str]:
    """Where each hyper-parameter's value came from: "user" (method_params: always wins), "twin"
    (chosen by twin-tuning) or "default" (the method's documented default)."""
    tuned = set().union(*(t["params"] for t in tuning.trials)) if tuning else set()
    return {k: "user" if k in user else "twin" if k in tuned else "default" for k in sorted(params)}


def evaluate_result(result: Result) -> tuple[dict, Probs]:
    """The report of a finished `pipeline.execute` and the softmax outputs it was built from."""
    probs = model_probs(result.data, result.models())
    r = result
    return build_report(r.cfg, r.data, r.trained, r.twin, r.decisions, r.unlearned, probs), probs
