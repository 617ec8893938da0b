"""Helpers shared by the dashboard tests (imported as a top-level module by pytest's rootdir
path)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TINY_ENV = {"TMU_DASHBOARD_PROFILE": "quick", "TMU_DASHBOARD_DATASET": "digits"}


def tiny_state() -> dict:
    from dashboard import service

    state: dict = {}
    service.init_state(state)
    state["w.gold_seeds"] = 2
    state["w.forget_mode"] = "fraction of one class"
    state["w.sub_fraction"] = 0.3
    return state
