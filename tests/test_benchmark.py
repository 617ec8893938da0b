"""tmu.benchmark: a tiny benchmark end to end (markdown, figure, the seed class `*`), and the row
figures computed from a report."""

from __future__ import annotations

import numpy as np
import pytest

from tmu.benchmark import DELTA, floor_row, method_row, run_benchmark

TINY = {
    "train": {"epochs": 1, "batch_size": 32},
    "twin": {"min_size": 40, "max_epochs": 1},
    "predictor": {"epochs": 10, "folds": 2},
    "features": {"features": ["DF", "CF"]},
}


def report(member_rates=(0.5, 0.7), delta=0.1) -> dict:
    gold = [
        {"acc": {"test": a}, "mia": {"forget_member_rate": m}}
        for a, m in zip((0.9, 0.8), member_rates)
    ]
    vs = {"delta_forget": delta, "agreement_forget": 0.95, "per_class_delta_forget": 0.2}
    return {
        "models": {
            "gold": gold,
            "tmu": {
                "vs_gold": vs,
                "acc": {"test": 0.85},
                "mia": {"forget_member_rate": 0.9},
                "retrain_time_ratio": 0.1,
            },
        },
        "noise_floor": {
            "delta_forget": 0.01,
            "agreement_forget": 0.99,
            "per_class_delta_forget": 0.02,
        },
    }


def test_rows_from_a_report():
    row = method_row(report(), "tmu")
    assert row[DELTA] == 0.1 and row["agreement"] == 0.95 and row["time / retrain"] == 0.1
    assert row["MIA gap"] == pytest.approx(abs(0.9 - 0.6))  # against the golds' mean member rate
    floor = floor_row(report())
    assert floor[DELTA] == 0.01 and floor["test acc"] == pytest.approx(0.85)
    assert floor["MIA gap"] == pytest.approx(0.2) and floor["time / retrain"] == 1.0


@pytest.mark.slow
def test_tiny_benchmark_writes_markdown_and_figure(tmp_path):
    out = tmp_path / "bench.md"
    text = run_benchmark(
        datasets=["digits"],
        settings=["subclass:*:0.3"],
        seeds=2,
        methods=("tmu", "finetune"),
        out=out,
        device="cpu",
        gold_seeds=2,
        overrides=TINY,
    )
    assert out.read_text() == text
    assert "### `digits`, `subclass:*:0.3` (2 seeds" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    names = [r.split(" | ")[0].strip("| ") for r in rows[1:]]
    assert names == ["original (no unlearning)", "tmu", "finetune", "gold vs gold (noise floor)"]
    assert all(cell.count("±") == 1 for r in rows[1:] for cell in r.strip("|").split(" | ")[1:])
    assert (tmp_path / "bench-digits-subclass_C_0.3.png").stat().st_size > 1000
    assert np.isfinite(float(rows[2].split(" | ")[1].split(" ± ")[0]))  # tmu's |Δ_f| mean
