"""Twin-tuning scores of TMU's two wrong-label rules (runner-up vs random) at two oversampling
levels.

Scores come from the twin problem only (|Δ_f| + 1 - agreement with the twin gold M_o on H_f, plus
any
retain accuracy lost; lower is better), as in tmu.tuning. Used in docs/benchmarks.md to justify the
default `hard_label="runner_up"`.

    .venv/bin/python scripts/twin_label_check.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tmu.artifacts import Store  # noqa: E402
from tmu.config import RunConfig, from_dict  # noqa: E402
from tmu.pipeline import execute  # noqa: E402
from tmu.unlearn import METHODS  # noqa: E402

POINTS = [{"oversample": o, "hard_label": h} for o in (4, 10) for h in ("runner_up", "random")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    METHODS["tmu"].grid = POINTS
    print(
        "| setting | seed | "
        + " | ".join(f"{p['hard_label']} ×{p['oversample']}" for p in POINTS)
        + " |"
    )
    print("|---" * (len(POINTS) + 2) + "|")
    wins = ties = pairs = 0
    with tempfile.TemporaryDirectory() as tmp:
        for spec in ("random:0.1", "subclass:3:0.3"):
            for seed in range(args.seeds):
                cfg = from_dict(
                    RunConfig, {"forget": spec, "seed": seed, "methods": ["tmu"], "gold_seeds": 1}
                )
                trials = execute(cfg, store=Store(tmp)).twin.tuning["tmu"].trials
                scores = [t["score"] for t in trials]
                print(f"| `{spec}` | {seed} | " + " | ".join(f"{v:.3f}" for v in scores) + " |")
                for runner, rand in ((scores[0], scores[1]), (scores[2], scores[3])):
                    pairs += 1
                    wins += runner < rand - 1e-9
                    ties += abs(runner - rand) <= 1e-9
    print(f"\nrunner-up better in {wins} of {pairs} pairs, equal in {ties}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
