"""Per-feature ablation of TMU's hardness predictor: for each feature subset, the predictor's
AUROC and balanced accuracy against gold's right / wrong on D_f, TMU's agreement with gold and
its flips, averaged over seeds (mnist5k, 3 gold seeds). Reuses a run store, so on the benchmark's
store only the features, the predictor and TMU are recomputed.

    OMP_NUM_THREADS=1 python scripts/feature_ablation.py --seeds 100-109 \
        --settings "random:0.1;subclass:*:0.3" --store DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dev_variants import mnist5k_config  # noqa: E402
from tmu.artifacts import Store  # noqa: E402
from tmu.pipeline import execute  # noqa: E402
from tmu.report import evaluate_result  # noqa: E402

SUBSETS = (("DF", "AF", "CF"), ("DF",), ("AF",), ("CF",), ("DF", "CF"))


def seeds_of(text: str) -> list[int]:
    if "-" in text:
        lo, hi = map(int, text.split("-"))
        return list(range(lo, hi + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="100-109")
    p.add_argument("--settings", default="random:0.1;subclass:*:0.3")
    p.add_argument("--store", default="runs")
    args = p.parse_args()
    store, seeds = Store(args.store), seeds_of(args.seeds)
    print(f"seeds {seeds[0]}..{seeds[-1]} ({len(seeds)}), mnist5k, 3 gold seeds\n")
    for setting in args.settings.split(";"):
        print(f"`{setting}`:\n")
        print("| features | predictor AUROC | balanced accuracy | TMU agreement | flips |")
        print("|---|---|---|---|---|")
        shift = []
        for subset in SUBSETS:
            rows = []
            for seed in seeds:
                features = {"features": list(subset)}
                cfg = mnist5k_config(setting, seed, methods=["tmu"], features=features)
                r = evaluate_result(execute(cfg, store=store))[0]
                q = r["predictor"]
                auroc = np.nan if q.get("auroc") is None else q["auroc"]
                agree = r["models"]["tmu"]["vs_gold"]["agreement_forget"]
                rows.append((auroc, q["balanced_accuracy"], agree, q["predicted_hard"]))
                if len(subset) == len(SUBSETS[0]):
                    shift.append(r["twin"]["feature_ks"])
            a = np.array(rows, dtype=float)
            print(
                f"| {'+'.join(subset)} | {np.nanmean(a[:, 0]):.3f} ± {np.nanstd(a[:, 0]):.3f} | "
                f"{a[:, 1].mean():.3f} | {a[:, 2].mean():.4f} | {a[:, 3].mean():.1f} |",
                flush=True,
            )
        ks = {f: np.mean([s[f] for s in shift]) for f in SUBSETS[0]}
        print(
            "\nFeature shift, twin set (H_f under M_t) vs forget set (D_f under M_o), mean KS "
            "statistic: " + ", ".join(f"{f} {v:.2f}" for f, v in ks.items()) + "\n"
        )


if __name__ == "__main__":
    main()
