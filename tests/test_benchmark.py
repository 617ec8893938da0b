"""tmu.benchmark: a tiny benchmark end to end (markdown, figure, the seed class `*`), and the row
figures computed from a report."""

from __future__ import annotations

import numpy as np
import pytest

from tmu.benchmark import (
    CLOSED,
    DELTA,
    LABEL_ORACLE,
    ORACLE,
    RANDOM_FLIPS,
    floor_row,
    method_row,
    paired_ci,
    run_benchmark,
    sign_test,
)

TINY = {
    "train": {"epochs": 1, "batch_size": 32},
    "twin": {"min_size": 40, "max_epochs": 1},
    "predictor": {"epochs": 10, "folds": 2},
    "features": {"features": ["DF", "CF"]},
}


def report(member_rates=(0.5, 0.7), delta=0.1) -> dict:
    gold = [
        {"acc": {"test": a, "forget": 0.5}, "mia": {"forget_member_rate": m}}
        for a, m in zip((0.9, 0.8), member_rates)
    ]
    vs = {"delta_forget": delta, "agreement_forget": 0.95, "per_class_delta_forget": 0.2}
    return {
        "models": {
            "gold": gold,
            "original": {"vs_gold": {**vs, "delta_forget": 0.4}},
            "tmu": {
                "vs_gold": vs,
                "acc": {"test": 0.85, "forget": 0.6},
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
    assert row["acc_f"] == 0.6 and row[CLOSED] == pytest.approx(1 - 0.1 / 0.4)
    floor = floor_row(report())
    assert floor[DELTA] == 0.01 and floor["test acc"] == pytest.approx(0.85)
    assert floor["acc_f"] == 0.5 and np.isnan(floor[CLOSED])
    assert floor["MIA gap"] == pytest.approx(0.2) and floor["time / retrain"] == 1.0


def test_sign_test_drops_ties_and_is_two_sided():
    assert sign_test(np.array([0.1] * 10)) == pytest.approx(2 * 0.5**10)
    assert sign_test(np.array([0.1] * 5 + [-0.1] * 5)) == pytest.approx(1.0)
    assert sign_test(np.array([0.0, 0.0])) == 1.0
    assert sign_test(np.array([0.2, 0.0, 0.1])) == pytest.approx(0.5)


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
        LABEL_ORACLE,
        "gold vs gold (noise floor)",
    ]
    cells = [r.strip("|").split(" | ")[1:] for r in rows[1:]]
    assert all(c.count("±") == 1 or c == "n/a" for row in cells for c in row)
    assert cells[-1][2] == "n/a"  # the noise floor closes no gap
    assert (tmp_path / "bench-digits-subclass_C_0.3.png").stat().st_size > 1000
    assert np.isfinite(float(rows[2].split(" | ")[2].split(" ± ")[0]))  # tmu's |Δ_f| mean
    # paired tables: TMU against the original, finetune and the controls, for three metrics
    assert "`tmu` minus each other model, agreement (higher is better)" in text
    paired = [
        line for line in text.splitlines() if line.startswith("| finetune | ") and "[" in line
    ]
    assert len(paired) == 3 and all(" / 2 | " in line for line in paired)
    # every control says how many of its flips took effect
    assert "Flips per request" in text and LABEL_ORACLE + ": " in text


def test_controls_flip_what_their_names_say(tmp_path):
    from tmu.artifacts import Store
    from tmu.benchmark import add_controls, control_problems
    from tmu.config import RunConfig, from_dict
    from tmu.pipeline import execute
    from tmu.report import evaluate_result

    cfg = from_dict(
        RunConfig,
        {**TINY, "dataset": "digits", "forget": "random:0.1", "device": "cpu", "gold_seeds": 2},
    )
    result = execute(cfg, store=Store(tmp_path))
    report, probs = evaluate_result(result)
    golds = [probs[f"gold_{k}"]["forget"] for k in range(2)]
    gold = np.mean(golds, axis=0).argmax(1)
    y = result.data.labels[result.data.splits.forget]
    problems = control_problems(result, golds)
    wrong = gold != y
    # The oracles flip exactly the gold ensemble's wrong set; the label oracle to gold's class.
    assert np.array_equal(~problems[ORACLE].easy, wrong) and problems[ORACLE].flip_labels is None
    assert np.array_equal(~problems[LABEL_ORACLE].easy, wrong)
    assert np.array_equal(problems[LABEL_ORACLE].flip_labels, gold)
    # The random control flips as many samples as the rate rule (the twin's estimate).
    n_hard = round((1 - result.twin.predictor.easy_rate) * len(y))
    assert (~problems[RANDOM_FLIPS].easy).sum() == n_hard
    controls = add_controls(report, result, probs)["controls"]
    for name in (RANDOM_FLIPS, ORACLE, LABEL_ORACLE):
        flips = controls[name]["flips"]
        assert flips["flips"] == (~problems[name].easy).sum()
        assert 0 <= flips["landed"] <= flips["moved"] <= flips["flips"]
        assert controls[name]["params"]["oversample"] == 10  # the fixed strength
    assert controls[LABEL_ORACLE]["flips"]["on_gold"] == wrong.sum()  # every label is gold's
