#!/usr/bin/env bash
# The first minutes on a lent GPU machine, in one call (docs/gpu.md):
#   run(command="bash scripts/gpu_run.sh 420", carry=[".whl"], timeout_s=540)
# installs the wheels carried in .whl/ (scripts/gpu_wheels.sh downloads them here, for the
# machine's Python 3.12), checks that every module the bench needs imports, then runs
# scripts/gpu_bench.py with a deadline (seconds, default 420): its JSON (rewritten after every
# part), its log and the import check land in $OUT, whatever happens.
set -u
DEADLINE=${1:-420}
OUT=${OUT:-/tmp/gpu_out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if ls .whl/*.whl >/dev/null 2>&1; then
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --target /tmp/tmu-site .whl/*.whl >"$OUT/install.log" 2>&1; then
    export PYTHONPATH="/tmp/tmu-site:$PWD"
  else
    echo "gpu_run: installing the carried wheels failed (install.log); going on without them"
  fi
fi
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true) \
  >"$OUT/device.txt" 2>&1
if ! "$PY" scripts/gpu_imports.py >"$OUT/imports.txt" 2>&1; then
  cat "$OUT/imports.txt"
  echo "gpu_run: a module the bench needs does not import (imports.txt); carry its wheel"
  exit 3
fi
cat "$OUT/imports.txt"
# shellcheck disable=SC2086  # GPU_BENCH_ARGS holds several words on purpose
"$PY" scripts/gpu_bench.py ${GPU_BENCH_ARGS:-} --deadline "$DEADLINE" \
  --json "$OUT/gpu_bench.json" >"$OUT/gpu_bench.txt" 2>&1
status=$?
cat "$OUT/gpu_bench.txt"
exit $status
