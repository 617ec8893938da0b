#!/usr/bin/env bash
# Do two versions of the code report the same numbers? Runs five fixed configs (every forget-spec
# kind, every method, twin-tuned variants, both decision rules) with the code at git REF (default
# HEAD) and with the working tree, one torch thread each, then compares the run folders
# (report.json without timings, predictions.npz, split.json, config.json).
#   bash scripts/refactor_check.sh [REF]          # about 10 minutes on 2 cores
set -euo pipefail
REF=${1:-HEAD}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
WORK=$(mktemp -d)
git -C "$ROOT" worktree add -q --detach "$WORK/base" "$REF"
trap 'git -C "$ROOT" worktree remove --force "$WORK/base"; rm -rf "$WORK"' EXIT
mkdir "$WORK/new" && cp -r "$ROOT/tmu" "$WORK/new/"    # a snapshot: edits during the run don't leak in
IDS=$(cd "$WORK/base" && "$PY" -c "from tmu.splits import split_pool; print(','.join(map(str, split_pool(1797, 0.2, 0.2, 0)[0][::40][:14])))")
ALL=tmu,finetune,neggrad_plus,random_label,boundary_shrink,l1_sparse,scrub,salun,bad_teacher,retrain
runs() {  # runs CODE_DIR OUT_DIR: the five configs with the code in CODE_DIR
  local code=$1 out=$2
  run() { local name=$1; shift; (cd "$code" && OMP_NUM_THREADS=1 "$PY" -m tmu run -q --store "$out/store" \
                                   --out "$out/$name" "$@" >/dev/null); }
  run default
  run digits_sub --dataset digits --forget subclass:3:0.3 --seed 1 --methods $ALL --twin-tune all --gold-seeds 2
  run digits_class --dataset digits --forget class:5 --seed 2 --methods tmu,finetune,scrub --gold-seeds 2
  run digits_ids --dataset digits --forget "ids:$IDS" --methods tmu,random_label --gold-seeds 2
  run digits_rand --dataset digits --forget random:0.2 --seed 3 --methods tmu,salun \
      --set predictor.rule=threshold --gold-seeds 1
}
runs "$WORK/base" "$WORK/out_base"
runs "$WORK/new" "$WORK/out_new"
"$PY" "$ROOT/scripts/compare_runs.py" "$WORK/out_base" "$WORK/out_new" default digits_sub digits_class digits_ids digits_rand
