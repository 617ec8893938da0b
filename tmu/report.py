"""Evaluate the models of a finished run against the gold models and assemble `report.json`
(the contract in architecture.md)."""
from __future__ import annotations

import numpy as np

from . import evaluate as ev
from .config import to_dict
from .pipeline import Run, method_entries
from .training import predict
from .unlearn import METHODS


def model_probs(run: Run) -> dict[str, dict[str, np.ndarray]]:
    """Softmax outputs of every model on each data role: probs[model][set] of shape (n, K)."""
    sets = {k: getattr(run.splits, k) for k in ev.SETS}
    return {name: {k: predict(m, run.x, ids, device=run.device) for k, ids in sets.items()}
            for name, m in run.models.items()}


def build_report(run: Run, probs: dict[str, dict[str, np.ndarray]] | None = None) -> dict:
    """The full report of a run (see architecture.md for the schema)."""
    probs = probs or model_probs(run)
    s, k_cls = run.splits, run.pool.num_classes
    y = {k: run.labels[getattr(s, k)] for k in ev.SETS}
    golds = [probs[f"gold_{k}"]["forget"] for k in range(run.cfg.gold_seeds)]
    gold_seconds = float(np.mean([run.meta[f"gold_{k}"]["seconds"] for k in range(run.cfg.gold_seeds)]))

    def entry(name: str) -> dict:
        out = ev.model_summary(probs[name], y, k_cls)
        out["seconds"], out["cached"] = run.meta[name]["seconds"], run.meta[name]["cached"]
        return out

    models = {"original": entry("original"),
              "gold": [entry(f"gold_{k}") for k in range(run.cfg.gold_seeds)]}
    for e in method_entries(run.cfg):
        name = e.name
        out = entry(name)
        out["method"], out["twin_tuned"], out["params"] = e.method, e.tuned, run.meta[name]["params"]
        out["vs_gold"] = ev.vs_golds(probs[name]["forget"], golds, y["forget"], k_cls)
        out["retrain_time_ratio"] = out["seconds"] / gold_seconds
        tuned = run.extras.get("tuning", {}).get(e.method) if e.tuned else None
        if tuned is not None:
            out["twin_tuning"] = {"chosen": tuned["params"], "trials": tuned["trials"], "seconds": tuned["seconds"]}
        if METHODS[e.method].needs_predictor:
            out["prep_seconds"] = run.extras["twin_seconds"] + (tuned or {}).get("seconds", 0.0)
            out["prep_retrain_time_ratio"] = out["prep_seconds"] / gold_seconds
        models[name] = out
    models["original"]["vs_gold"] = ev.vs_golds(probs["original"]["forget"], golds, y["forget"], k_cls)

    report = {"config": to_dict(run.cfg),
              "dataset": {"name": run.cfg.dataset, "classes": list(run.pool.classes),
                          "sizes": {"train": len(s.train), "holdout": len(s.holdout), "test": len(s.test),
                                    "forget": len(s.forget), "retain": len(s.retain)}},
              "device": str(run.device),
              "methods": [e.name for e in method_entries(run.cfg)],
              "models": models,
              "noise_floor": ev.noise_floor(golds, y["forget"], k_cls),
              "gold_seconds": gold_seconds}
    if "forget_easy" in run.extras:
        report["predictor"] = ev.predictor_quality(run.extras["forget_easy"], golds, y["forget"])
        report["twin"] = {"size": len(run.extras["twin_forget"]),
                          "easy_rate": run.extras["fitted"].easy_rate,
                          "true_hard": int((run.extras["twin_g"] == 0).sum())}
    return report
