"""Concurrent CLI runs on one machine: do they share the cores or thrash?

Starts N identical `python -m tmu run` processes at once (digits, default methods; each its own
empty store, so each trains every model) for N in --counts, and reports each batch's wall time
against N runs one after another (N x the time of one run alone). Modes:

* `shared` (the default behaviour): OMP_WAIT_POLICY=PASSIVE and tmu.threads' core sharing;
* `naive` (what happened before): 2 intra-op threads each, OpenMP's spinning wait, no sharing.

    .venv/bin/python scripts/bench_concurrency.py [--counts 1,2,4] [--modes shared,naive]
        [--naive-counts 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "shared": {},
    "naive": {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2", "TMU_SHARE_CORES": "0"},
}


def batch(n: int, mode: str, base: Path) -> list[float]:
    """Wall seconds of each of `n` runs started together."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env.update(MODES[mode], PYTHONPATH=str(ROOT), TMU_CORES_DIR=str(base / "cores"))
    procs, start = [], time.perf_counter()
    for i in range(n):
        store = base / f"{mode}-{n}-{i}"
        cmd = [sys.executable, "-m", "tmu", "run", "--dataset", "digits", "--gold-seeds", "2"]
        cmd += ["--device", "cpu", "-q", "--store", str(store), "--out", str(store / "out")]
        procs.append(
            subprocess.Popen(
                cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        )
    ends = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(err.decode()[-2000:])
        ends.append(time.perf_counter() - start)
    return ends


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="1,2,4")
    ap.add_argument("--modes", default="shared,naive")
    ap.add_argument("--naive-counts", default="2", help="counts for the naive mode (it thrashes)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = {
        "machine": f"{platform.platform()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}",
        "job": "python -m tmu run --dataset digits --gold-seeds 2 --device cpu (cold store)",
        "results": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            counts = args.counts if mode == "shared" else args.naive_counts
            alone = None
            for n in [int(c) for c in counts.split(",")]:
                if alone is None:
                    alone = max(batch(1, mode, Path(tmp)))
                ends = batch(n, mode, Path(tmp)) if n > 1 else [alone]
                row = {
                    "mode": mode,
                    "concurrent": n,
                    "each_seconds": ends,
                    "total_seconds": max(ends),
                    "one_after_another_seconds": n * alone,
                    "ratio": max(ends) / (n * alone),
                }
                out["results"].append(row)
                print(json.dumps(row), flush=True)
    print("\n| mode | runs at once | wall time of the batch (s) | one after another (s) | ratio |")
    print("|---|---|---|---|---|")
    for r in out["results"]:
        print(
            f"| {r['mode']} | {r['concurrent']} | {r['total_seconds']:.1f} | "
            f"{r['one_after_another_seconds']:.1f} | {r['ratio']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
