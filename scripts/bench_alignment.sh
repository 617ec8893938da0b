#!/usr/bin/env bash
# The held-out alignment benchmark of docs/benchmarks-alignment.md: every method (defaults, and
# stopped at the twin's estimate), TMU's controls, 10 report seeds (100..109, never used in
# development) per setting, paired differences with bootstrap CIs. One process per setting, one
# torch thread each, sharing a run store; then the three sections are joined.
#   bash scripts/bench_alignment.sh [OUT_DIR]   (about 50 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/bench-alignment}
store=${TMU_BENCH_STORE:-$(mktemp -d)}
mkdir -p "$out"
baselines=finetune,neggrad_plus,random_label,boundary_shrink,l1_sparse,scrub,salun,bad_teacher
run() {
  OMP_NUM_THREADS=1 .venv/bin/python -m tmu benchmark --dataset mnist5k --settings "$1" \
    --seeds 10 --first-seed 100 --methods "tmu,$baselines" --stop-at-target "$baselines" \
    --controls --gold-seeds 3 --store "$store" --out "$out/$2.md" > "$out/$2.log" 2>&1
}
run "random:0.1" random & p1=$!
run "subclass:*:0.3" subclass & p2=$!
run "mislabeled:0.1" mislabeled & p3=$!
wait $p1 $p2 $p3
cat "$out/random.md" "$out/subclass.md" "$out/mislabeled.md" > "$out/benchmark.md"
rm "$out/random.md" "$out/subclass.md" "$out/mislabeled.md" "$out"/*.log
echo "wrote $out/benchmark.md"
