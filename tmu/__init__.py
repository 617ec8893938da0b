"""Twin Machine Unlearning: unlearning aligned with the gold (retrained) model.

Quick use::

    python -m tmu run --dataset mnist5k --forget subclass:3:0.3 --out runs/demo
    run = tmu.load_run("runs/demo")       # .models, .split, .dataset, .report
"""
from .runs import LoadedRun, load_run

__all__ = ["LoadedRun", "load_run"]
__version__ = "0.1.0"
