"""`python -m tmu benchmark`: every method over several seeds and forget settings, against the
gold models and their noise floor, written as a markdown table with the command and machine.

Each (setting, seed) is one full run in a fresh store, so every time ratio compares a method with
gold retrains measured in the same run on the same machine.
"""
from __future__ import annotations

import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .artifacts import Store
from .config import RunConfig, from_dict
from .models import device_label, resolve_device
from .pipeline import execute
from .report import build_report

logger = logging.getLogger(__name__)

COLUMNS = ("\\|Δ_f\\|", "agreement", "per-class Δ", "test acc", "MIA gap", "time / retrain")


def method_row(report: dict, name: str) -> dict[str, float]:
    """The benchmark figures of one method in one run's report (MIA gap: |member rate - gold's|)."""
    e, golds = report["models"][name], report["models"]["gold"]
    gold_mia = np.mean([g["mia"]["forget_member_rate"] for g in golds])
    return {COLUMNS[0]: e["vs_gold"]["delta_forget"], "agreement": e["vs_gold"]["agreement_forget"],
            "per-class Δ": e["vs_gold"]["per_class_delta_forget"], "test acc": e["acc"]["test"],
            "MIA gap": abs(e["mia"]["forget_member_rate"] - gold_mia),
            "time / retrain": e.get("retrain_time_ratio", float("nan"))}


def method_row_original(report: dict) -> dict[str, float]:
    row = method_row(report, "original")
    row["time / retrain"] = 0.0
    return row


def floor_row(report: dict) -> dict[str, float]:
    f, golds = report["noise_floor"] or {}, report["models"]["gold"]
    return {COLUMNS[0]: f.get("delta_forget", float("nan")), "agreement": f.get("agreement_forget", float("nan")),
            "per-class Δ": f.get("per_class_delta_forget", float("nan")),
            "test acc": float(np.mean([g["acc"]["test"] for g in golds])), "MIA gap": float("nan"),
            "time / retrain": 1.0}


def fmt(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return "n/a" if np.isnan(v).all() else f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}"


def setting_table(setting: str, reports: list[dict]) -> list[str]:
    methods = reports[0]["methods"]
    rows = {"original (no unlearning)": [method_row_original(r) for r in reports],
            **{m: [method_row(r, m) for r in reports] for m in methods},
            "gold vs gold (noise floor)": [floor_row(r) for r in reports]}
    lines = [f"### `{setting}` ({len(reports)} seeds, |D_f| = {reports[0]['dataset']['sizes']['forget']})", "",
             "| method | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(fmt([r[c] for r in rs]) for c in COLUMNS) + " |" for name, rs in rows.items()]
    if "tmu" in methods:
        prep = [r["models"]["tmu"]["prep_retrain_time_ratio"] for r in reports]
        total = [r["models"]["tmu"]["prep_retrain_time_ratio"] + r["models"]["tmu"]["retrain_time_ratio"] for r in reports]
        pred = [r["predictor"]["balanced_accuracy"] for r in reports]
        lines += ["", f"TMU twin preparation / retrain: {fmt(prep)}; preparation + request / retrain: {fmt(total)}; "
                      f"predictor balanced accuracy (vs gold correctness): {fmt(pred)}; mean gold retrain "
                      f"{np.mean([r['gold_seconds'] for r in reports]):.1f} s."]
    return lines + [""]


def machine() -> str:
    device = resolve_device("auto")
    return (f"{platform.platform()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), device {device_label(device)}, Python {platform.python_version()}")


def run_benchmark(*, dataset: str, settings: list[str], seeds: int, methods: tuple[str, ...], out: Path,
                  store: Store | None = None, device: str = "auto", gold_seeds: int = 3,
                  overrides: dict | None = None) -> str:
    """Run every (setting, seed), write the markdown to `out`, return it."""
    start, sections = time.perf_counter(), []
    for setting in settings:
        reports = []
        for seed in range(seeds):
            cfg = from_dict(RunConfig, {**(overrides or {}), "dataset": dataset, "forget": setting, "seed": seed,
                                        "methods": list(methods), "gold_seeds": gold_seeds, "device": device})
            with tempfile.TemporaryDirectory() as tmp:
                run = execute(cfg, store=store or Store(tmp))
                reports.append(build_report(run))
            logger.info("benchmark %s seed %d done", setting, seed)
        sections += setting_table(setting, reports)
    text = "\n".join([f"## `{dataset}`: {', '.join(settings)}", "",
                      f"Command: `python -m tmu {' '.join(sys.argv[1:]) if sys.argv[1:] else 'benchmark'}`  ",
                      f"Machine: {machine()}  ",
                      f"Wall time of the whole benchmark: {time.perf_counter() - start:.0f} s", "",
                      "Mean ± std over seeds. |Δ_f|, agreement and per-class Δ compare each model with every "
                      "gold seed on the forget set (averaged); MIA gap is |forget member rate − gold's|; "
                      "time / retrain is the per-request time over one gold retrain in the same run.", "",
                      *sections])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text
