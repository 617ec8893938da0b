"""The scenario targets of issue 16, checked on benchmark reports: per scenario and seed, paired
with the same seed's fine-tune, original and gold, as mean [95 % bootstrap CI] and a sign test.

    python scripts/scenario_targets.py REPORTS.json[.gz] [--headline] [--methods tmu,tmu+rate]

REPORTS.json is what `python -m tmu benchmark --scenarios ... --reports FILE` wrote (a list of
report.json objects; gzipped as in docs/bench-scenarios/*/reports.json.gz). A target is met
when the whole confidence interval is on its side.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tmu.benchmark import paired_ci, sign_test  # noqa: E402
from tmu.scenarios import SCENARIOS  # noqa: E402


def scenario_of(report: dict) -> str:
    """The scenario a report's config came from (dataset aside: a scenario may be run on digits)."""
    c = report["config"]
    for name, sc in SCENARIOS.items():
        v = sc.values
        same = (
            c["forget"] == v["forget"]
            and c.get("recipe", "standard") == v.get("recipe", "standard")
            and c["split"].get("label_noise", 0.0) == v.get("split", {}).get("label_noise", 0.0)
        )
        if same:
            return name if c["dataset"] == sc.dataset else f"{name} ({c['dataset']})"
    return f"{c['dataset']} {c['forget']}"


def figures(report: dict, name: str) -> dict[str, float]:
    m = report["models"]
    golds = m["gold"]
    e = m[name] if name != "gold" else None
    gold_test = float(np.mean([g["acc"]["test"] for g in golds]))
    gold_mia = float(np.mean([g["mia"]["forget_member_rate"] for g in golds]))
    floor = (report.get("noise_floor") or {}).get("agreement_forget", float("nan"))
    return {
        "delta": e["vs_gold"]["delta_forget"],
        "agreement": e["vs_gold"]["agreement_forget"],
        "test": e["acc"]["test"],
        "mia_gap": abs(e["mia"]["forget_member_rate"] - gold_mia),
        "mia": e["mia"]["forget_member_rate"],
        "gold_test": gold_test,
        "gold_mia": gold_mia,
        "floor": floor,
    }


def ci(values) -> str:
    mean, lo, hi = paired_ci(np.asarray(values, dtype=float))
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def verdict(values, side: str) -> str:
    """ "met" when the 95 % CI lies entirely above 0 (side "above") or at or below 0."""
    _, lo, hi = paired_ci(np.asarray(values, dtype=float))
    ok = lo > 0 if side == "above" else hi <= 0
    return "**met**" if ok else "not met"


def check(name: str, reports: list[dict], method: str = "tmu") -> list[str]:
    """The targets for scenario `name` (its report list, one per seed), as markdown lines."""
    orig = [figures(r, "original") for r in reports]
    mine = [figures(r, method) for r in reports]
    ft = [figures(r, "finetune") for r in reports]
    n = len(reports)
    lines = [f"#### {name}: `{method}`, {n} seeds", ""]
    gap = np.array([o["delta"] for o in orig])
    closed_margin = np.array([0.2 * o["delta"] - t["delta"] for o, t in zip(orig, mine)])
    rows = [
        ("original's \\|Δ_f\\| (gap to gold)", f"{gap.mean():.3f}", ""),
        (
            "closes ≥ 80 % of it: 0.2 × original's \\|Δ_f\\| − its \\|Δ_f\\| (> 0)",
            ci(closed_margin),
            verdict(closed_margin, "above"),
        ),
    ]
    agree_gain = np.array([t["agreement"] - f["agreement"] for t, f in zip(mine, ft)])
    rows.append(
        (
            "agreement − fine-tune's",
            ci(agree_gain),
            f"sign test p = {sign_test(agree_gain):.3g}",
        )
    )
    half = np.array(
        [
            (t["agreement"] - f["agreement"]) - 0.5 * (t["floor"] - f["agreement"])
            for t, f in zip(mine, ft)
        ]
    )
    rows.append(
        (
            "closes ≥ half of fine-tune's agreement gap to gold-vs-gold (> 0)",
            ci(half),
            verdict(half, "above"),
        )
    )
    for bar in (0.1, 0.3):
        over = agree_gain - bar
        rows.append((f"agreement ≥ fine-tune's + {bar} (> 0)", ci(over), verdict(over, "above")))
    mia = np.array([t["mia_gap"] - 0.1 for t in mine])
    rows.append(
        (
            "membership rate on D_f within 0.1 of gold's: \\|gap\\| − 0.1 (≤ 0)",
            ci(mia),
            verdict(mia, "below"),
        )
    )
    test_vs_orig = np.array([t["test"] - o["test"] for t, o in zip(mine, orig)])
    rows.append(
        (
            "test accuracy − original's (≥ 0)",
            ci(test_vs_orig),
            f"{int((test_vs_orig >= 0).sum())} / {n} seeds ≥ 0",
        )
    )
    near = [abs(o["test"] - o["gold_test"]) <= 0.01 for o in orig]
    if any(near):
        gap_gold = np.array(
            [abs(t["test"] - t["gold_test"]) - 0.01 for t, k in zip(mine, near) if k]
        )
        rows.append(
            (
                "where the original's test accuracy is within 1 point of gold's: \\|Δ test\\| − "
                "0.01 (≤ 0)",
                ci(gap_gold),
                f"{int((gap_gold <= 0).sum())} / {len(gap_gold)} seeds",
            )
        )
    agree_orig = np.array([t["agreement"] - o["agreement"] for t, o in zip(mine, orig)])
    rows.append(
        (
            "agreement − original's (≥ 0)",
            ci(agree_orig),
            f"{int((agree_orig >= 0).sum())} / {n} seeds ≥ 0",
        )
    )
    lines += ["| target | mean [95 % CI] | verdict |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return lines + [""]


HEADLINE = {
    "original (no unlearning)": "original",
    "tmu": "TMU (gain)",
    "tmu+rate": "TMU (rate)",
    "finetune": "fine-tune",
    "random_label": "random labels",
    "salun": "SalUn",
    "scrub": "SCRUB",
    "boundary_shrink": "Boundary Shrink",
    "control: random flips (rate rule's count)": "random flips",
    "control: oracle flips (gold's wrong set)": "oracle flips",
    "control: label oracle (gold's wrong set, to gold's class)": "label oracle",
    "gold vs gold (noise floor)": "gold vs gold",
}


def headline(by: dict[str, list[dict]]) -> list[str]:
    """One table per figure (agreement, gap closed, MIA gap, test accuracy): scenarios as rows,
    the main models and the controls as columns, means over seeds."""
    from tmu.benchmark import CLOSED, collect

    lines = []
    for metric, form in (("agreement", "{:.3f}"), (CLOSED, "{:.2f}"), ("MIA gap", "{:.3f}"),
                         ("test acc", "{:.3f}")):  # fmt: skip
        lines += [f"**{metric}** (mean over seeds)", ""]
        lines += ["| scenario | " + " | ".join(HEADLINE.values()) + " |"]
        lines += ["|---" * (len(HEADLINE) + 1) + "|"]
        for name, reports in by.items():
            rows = collect(reports)
            cells = []
            for key in HEADLINE:
                v = np.array([r[metric] for r in rows.get(key, [])], dtype=float)
                cells.append("—" if not len(v) or np.isnan(v).all() else form.format(np.nanmean(v)))
            lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", help="the benchmark's --reports file")
    parser.add_argument("--methods", default="tmu,tmu+rate")
    parser.add_argument("--headline", action="store_true", help="print the headline tables too")
    args = parser.parse_args()
    by = defaultdict(list)
    path = Path(args.reports)
    text = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    for report in json.loads(text):
        by[scenario_of(report)].append(report)
    if args.headline:
        print("\n".join(headline(by)))
    for name, reports in by.items():
        for method in args.methods.split(","):
            if method in reports[0]["models"]:
                print("\n".join(check(name, reports, method)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
