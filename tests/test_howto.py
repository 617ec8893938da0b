"""docs/howto.md stays true: its Python blocks run in order in one namespace (a forget kind, a
decision rule and a scenario registered, then a tiny run that uses all three), and what they
registered is taken out again."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from tmu.forget import FORGET_KINDS, ForgetSpecError, parse_forget
from tmu.predictor import DECISION_RULES
from tmu.scenarios import SCENARIOS, ScenarioError, register_scenario

DOC = Path(__file__).resolve().parents[1] / "docs" / "howto.md"


def blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), flags=re.M | re.S)


@pytest.fixture
def registries():
    """The registries as they were, put back after the test."""
    saved = dict(FORGET_KINDS), dict(DECISION_RULES), dict(SCENARIOS)
    yield
    for registry, before in zip((FORGET_KINDS, DECISION_RULES, SCENARIOS), saved):
        registry.clear()
        registry.update(before)


def run_blocks(codes: list[str]) -> dict:
    """Run `codes` as the module `howto` would (a real module: dataclasses look their module up),
    without this file's `from __future__` flags."""
    module = types.ModuleType("howto")
    sys.modules["howto"] = module
    try:
        for code in codes:
            exec(compile(code, str(DOC), "exec", dont_inherit=True), module.__dict__)
    finally:
        sys.modules.pop("howto", None)
    return module.__dict__


def test_the_registrations_of_the_howto_work_and_refuse_bad_input(registries):
    codes = blocks()
    assert len(codes) == 4
    run_blocks(codes[:3])  # everything but the run
    assert {"every"} <= set(FORGET_KINDS) and "confident" in DECISION_RULES
    with pytest.raises(ForgetSpecError, match=r"'every:1'.*2 or more"):
        parse_forget("every:1")
    with pytest.raises(ForgetSpecError, match=r"every:N"):
        parse_forget("nope:3")
    with pytest.raises(ScenarioError, match="already registered"):
        register_scenario("spread-out", "again", dataset="digits", forget="every:5")
    with pytest.raises(ForgetSpecError):
        register_scenario("typo", "a typo fails here", dataset="digits", forget="every:x")


@pytest.mark.slow
def test_the_howto_run_uses_what_it_registered(registries, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMU_HOME", str(tmp_path / "store"))
    run_blocks(blocks())
    assert (tmp_path / "howto-run" / "report.json").is_file()
