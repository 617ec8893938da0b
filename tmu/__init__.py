"""Twin Machine Unlearning: unlearning aligned with the gold (retrained) model.

Quick use::

    python -m tmu run --dataset mnist5k --forget subclass:3:0.3 --out runs/demo
    run = tmu.load_run("runs/demo")       # .models, .split, .dataset, .report, .inspect
    views = tmu.inspect.get(run)           # embedding, CKA and attacks against gold
"""

import os

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning on a core that another
# process (a second run, the dashboard, a browser) needs. See tmu.threads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["LoadedRun", "load_run"]
__version__ = "0.2.0"


def __getattr__(name: str):
    # Lazy, so that `import tmu.plots` (the dashboard's pages) or `python -m tmu methods` does not
    # pay for importing the whole pipeline.
    if name == "inspect":
        from importlib import import_module

        return import_module(".inspect", __name__)
    if name in __all__:
        from . import runs

        return getattr(runs, name)
    raise AttributeError(f"module 'tmu' has no attribute {name!r}")
