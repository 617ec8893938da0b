"""Development only (seeds 0-9, never the report seeds): TMU variants on mnist5k against the
original, fine-tune and NegGrad+ of the same runs, as mean agreement and |Δ_f| over seeds and
the mean paired difference to fine-tune.

    OMP_NUM_THREADS=1 python scripts/dev_variants.py --seeds 0,1,2,3,4 \
        --settings "random:0.1;subclass:*:0.3" --out dev.json [--store DIR]

Variants (docs/benchmarks.md §6): A = the issue-7 defaults (rate rule, rehearsal of predicted-easy
samples, retain_ratio 2); B = gain rule; C = no rehearsal; D = B + C; E = D with a full retain
pass (retain_ratio 10, the defaults since issue 8); F = C with a full retain pass; G = E's TMU
settings with predictor.rule=twin.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tmu.artifacts import Store  # noqa: E402
from tmu.config import RunConfig, from_dict  # noqa: E402
from tmu.pipeline import execute  # noqa: E402
from tmu.report import evaluate_result  # noqa: E402

OLD = {"retain_ratio": 2.0, "train_easy": True}
NEW = {"retain_ratio": 10.0, "train_easy": False}
VARIANTS = {
    "A": ("rate", OLD),
    "B": ("gain", OLD),
    "C": ("rate", {**OLD, "train_easy": False}),
    "D": ("gain", {**OLD, "train_easy": False}),
    "E": ("gain", NEW),
    "F": ("rate", NEW),
    "G": ("twin", NEW),
}
BASELINES = ("original", "finetune", "neggrad_plus")


def mnist5k_config(setting: str, seed: int, **values) -> RunConfig:
    """A run on mnist5k with 3 gold seeds (the settings of the dev and report benchmarks)."""
    base = {"dataset": "mnist5k", "forget": setting, "seed": seed, "gold_seeds": 3}
    return from_dict(RunConfig, {**base, **values})


def run(settings, seeds, variants, store) -> list[dict]:
    rows = []
    for setting in settings:
        for seed in seeds:
            for name in variants:
                rule, tmu = VARIANTS[name]
                first = name == variants[0]  # the baselines once per (setting, seed)
                cfg = mnist5k_config(
                    setting,
                    seed,
                    methods=["tmu", "finetune", "neggrad_plus"] if first else ["tmu"],
                    predictor={"rule": rule},
                    method_params={"tmu": tmu},
                )
                report = evaluate_result(execute(cfg, store=store))[0]
                models = {name: "tmu", **({b: b for b in BASELINES} if first else {})}
                for label, model in models.items():
                    e = report["models"][model]
                    rows.append(
                        {
                            "setting": setting,
                            "seed": seed,
                            "variant": label,
                            "agree": e["vs_gold"]["agreement_forget"],
                            "delta": e["vs_gold"]["delta_forget"],
                            "hard": report["predictor"]["predicted_hard"],
                        }
                    )
                print(setting, seed, name, f"{rows[-len(models)]['agree']:.4f}", flush=True)
    return rows


def summary(rows: list[dict]) -> str:
    by = defaultdict(dict)
    for r in rows:
        by[(r["setting"], r["seed"])][r["variant"]] = r
    lines = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        seeds = sorted(s for st, s in by if st == setting)
        lines += [
            f"`{setting}`, dev seeds {seeds}:",
            "",
            "| model | agreement | \\|Δ_f\\| | agreement − fine-tune (paired) | predicted hard |",
            "|---|---|---|---|---|",
        ]
        names = sorted({v for s in seeds for v in by[(setting, s)]}, key=lambda v: (len(v), v))
        for n in names:
            both = [s for s in seeds if n in by[(setting, s)] and "finetune" in by[(setting, s)]]
            a = np.mean([by[(setting, s)][n]["agree"] for s in both])
            d = np.mean([by[(setting, s)][n]["delta"] for s in both])
            diff = np.mean(
                [by[(setting, s)][n]["agree"] - by[(setting, s)]["finetune"]["agree"] for s in both]
            )
            hard = [by[(setting, s)][n]["hard"] for s in both] if n in VARIANTS else ""
            lines.append(f"| {n} | {a:.4f} | {d:.4f} | {diff:+.4f} | {hard} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--settings", default="random:0.1;subclass:*:0.3")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--store", default="runs/dev-store")
    p.add_argument("--out", default="dev-variants.json")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if any(s >= 100 for s in seeds):
        raise SystemExit("seeds >= 100 are report seeds: develop on 0-9 only")
    rows = run(args.settings.split(";"), seeds, args.variants.split(","), Store(args.store))
    Path(args.out).write_text(json.dumps(rows))
    print(summary(rows))


if __name__ == "__main__":
    main()
