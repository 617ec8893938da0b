"""Compare run folders of the same names under two roots: report.json without timings,
predictions.npz, split.json and config.json. Prints one line per run; exits 1 on any difference.

    python scripts/compare_runs.py ROOT_A ROOT_B NAME [NAME ...]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

TIMINGS = {
    "seconds",
    "cached",
    "retrain_time_ratio",
    "prep_seconds",
    "prep_retrain_time_ratio",
    "gold_seconds",
}


def without_timings(x):
    if isinstance(x, dict):
        return {k: without_timings(v) for k, v in x.items() if k not in TIMINGS}
    if isinstance(x, list):
        return [without_timings(v) for v in x]
    return x


def differences(a, b, path=""):
    """Paths where two JSON values differ (NaN equals NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d
            for k in sorted(set(a) | set(b))
            for d in differences(a.get(k), b.get(k), f"{path}.{k}")
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (p, q) in enumerate(zip(a, b)) for d in differences(p, q, f"{path}[{i}]")]
    same = a == b or (
        isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    )
    return [] if same else [f"{path}: {a!r} != {b!r}"]


def compare(a: Path, b: Path) -> list[str]:
    load = lambda p, f: json.loads((p / f).read_text())  # noqa: E731
    diffs = differences(
        without_timings(load(a, "report.json")), without_timings(load(b, "report.json"))
    )
    diffs += [f"{f} differs" for f in ("split.json", "config.json") if load(a, f) != load(b, f)]
    with np.load(a / "predictions.npz") as pa, np.load(b / "predictions.npz") as pb:
        if set(pa.files) != set(pb.files):
            diffs.append(f"predictions.npz keys differ: {sorted(set(pa.files) ^ set(pb.files))}")
        diffs += [
            f"predictions.npz {k} differs"
            for k in set(pa.files) & set(pb.files)
            if not np.array_equal(pa[k], pb[k])
        ]
    return diffs


def main(argv: list[str]) -> int:
    root_a, root_b, *names = argv
    bad = 0
    for name in names:
        diffs = compare(Path(root_a) / name, Path(root_b) / name)
        print(f"{name}: {'identical' if not diffs else f'{len(diffs)} difference(s)'}")
        for d in diffs[:20]:
            print("   ", d)
        bad += bool(diffs)
    return int(bad > 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
