#!/usr/bin/env bash
# Download, here (where PyPI answers), the wheels a lent GPU machine lacks, for its Python 3.12:
# everything tmu imports that its image does not hold (docs/gpu.md). They land in .whl/ (ignored
# by git); pass `carry: [".whl"]` to the device call, and scripts/gpu_run.sh installs them there.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
pin() { grep -i "^$1==" requirements.txt | head -1; }
.venv/bin/pip download -q --dest .whl --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  "$(pin captum)" "$(pin mlxtend)" "$(pin pydantic)" \
  "pydantic-core==$(.venv/bin/python -c 'import pydantic_core; print(pydantic_core.__version__)')" \
  "annotated-types==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("annotated-types"))')" \
  "typing-inspection==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("typing-inspection"))')" \
  "typing-extensions==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("typing-extensions"))')"
ls -1 .whl
du -sh .whl
