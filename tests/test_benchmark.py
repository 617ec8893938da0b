"""tmu.benchmark: a tiny benchmark end to end (markdown, figure, the seed class `*`), and the row
figures computed from a report."""

from __future__ import annotations

import numpy as np
import pytest

from tmu.benchmark import (
    DELTA,
    ORACLE,
    RANDOM_FLIPS,
    floor_row,
    method_row,
    paired_ci,
    run_benchmark,
)

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


def test_paired_ci_brackets_the_mean_and_shrinks_with_agreeing_pairs():
    mean, lo, hi = paired_ci(np.array([0.01, 0.02, 0.03, 0.04]))
    assert mean == pytest.approx(0.025) and 0.01 <= lo < mean < hi <= 0.04
    assert paired_ci(np.full(5, 0.02)) == pytest.approx((0.02, 0.02, 0.02))
    wide = paired_ci(np.array([-0.1, 0.1, -0.1, 0.1]))
    assert wide[1] < 0 < wide[2]


@pytest.mark.slow
def test_tiny_benchmark_writes_markdown_figure_controls_and_paired_tables(tmp_path):
    out = tmp_path / "bench.md"
    text = run_benchmark(
        datasets=["digits"],
        settings=["subclass:*:0.3"],
        seeds=2,
        first_seed=100,
        controls=True,
        methods=("tmu", "finetune"),
        out=out,
        device="cpu",
        gold_seeds=2,
        overrides=TINY,
    )
    assert out.read_text() == text
    assert "### `digits`, `subclass:*:0.3` (2 seeds: 100..101" in text
    table = text.split("### ")[1].split("\n\n")[1].splitlines()
    rows = [line for line in table if line.startswith("| ")]
    names = [r.split(" | ")[0].strip("| ") for r in rows[1:]]
    assert names == [
        "original (no unlearning)",
        "tmu",
        "finetune",
        RANDOM_FLIPS,
        ORACLE,
        "gold vs gold (noise floor)",
    ]
    assert all(cell.count("±") == 1 for r in rows[1:] for cell in r.strip("|").split(" | ")[1:])
    assert (tmp_path / "bench-digits-subclass_C_0.3.png").stat().st_size > 1000
    assert np.isfinite(float(rows[2].split(" | ")[1].split(" ± ")[0]))  # tmu's |Δ_f| mean
    # paired tables: TMU against the original, finetune and both controls, for both metrics
    assert "TMU minus each other model, agreement (higher is better)" in text
    paired = [
        line for line in text.splitlines() if line.startswith("| finetune | ") and "[" in line
    ]
    assert len(paired) == 2 and all(" / 2 |" in line for line in paired)
