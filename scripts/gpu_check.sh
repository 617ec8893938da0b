#!/usr/bin/env bash
# The GPU check of docs/benchmarks.md, run on a lent GPU machine from the repository root.
# Wheels the image lacks (captum, mlxtend, pydantic with pydantic-core, annotated-types and
# typing-inspection) travel in .whl/ (see the device notes); $OUT collects logs.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
TIMEFORMAT="%R s wall"
run() { time python3 -m tmu run -q "$@"; }
echo "== default run, cuda, cold store"; run --device cuda --store /tmp/s1 --out "$OUT/default_cuda" | tee "$OUT/default_cuda.txt"
echo "== same run again (stored models reused)"; run --device cuda --store /tmp/s1 --out "$OUT/default_cuda2" >/dev/null
echo "== every method, twin-tuned variants too, cuda"
run --device cuda --store /tmp/s2 --methods tmu,finetune,neggrad_plus,random_label,boundary_shrink,l1_sparse,scrub,salun,bad_teacher --twin-tune all --out "$OUT/all_cuda" | tee "$OUT/all_cuda.txt"
