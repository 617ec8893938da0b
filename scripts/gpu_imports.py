"""Check, on a lent GPU machine, that every module the GPU bench needs imports: one line each,
`ok NAME VERSION` or `FAILED NAME: why`; exit status 1 when one failed. Run by gpu_run.sh."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODULES = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "sklearn",
    "pandas",
    "PIL",
    "tqdm",
    "typing_extensions",
    "pydantic",
    "pydantic_core",
    "captum",
    "mlxtend",
    "tmu.pipeline",
    "tmu.runs",
    "tmu.features.adversarial",
)


def main() -> int:
    failed = 0
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except Exception as err:  # any failure is a line, never a traceback
            failed += 1
            print(f"FAILED {name}: {type(err).__name__}: {err}")
            continue
        print(f"ok {name} {getattr(module, '__version__', '')}".rstrip())
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA GPU"
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {gpu}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
