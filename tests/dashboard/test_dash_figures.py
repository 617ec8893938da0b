"""A page's rerun builds no figure it built before (dashboard.service.figures): the result pages
drew eleven plotly figures per click (1.2 s of the server's time on Alignment, 2 s on
Attributions) for the same run."""

from __future__ import annotations

import ast

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dash_helpers import ROOT
from dashboard.service import figures
from dashboard.service.figures import MemoPlots, memoised

VIEWS = sorted((ROOT / "dashboard" / "views").glob("*.py"))
MUTATORS = ("update_layout", "update_traces", "update_xaxes", "update_yaxes", "add_trace")


def test_a_memoised_builder_gives_the_same_result_for_the_same_inputs():
    calls = []

    @memoised
    def build(report, which, *, n=1):
        calls.append(which)
        return {"which": which, "n": n}

    report, other = {"a": 1}, {"a": 1}  # equal, but another object: another run
    first = build(report, "forget")
    assert build(report, "forget") is first and calls == ["forget"]
    assert build(report, "test") is not first and build(report, "forget", n=2)["n"] == 2
    assert build(other, "forget") is not first  # matched by identity, not by equality
    assert build(np.arange(3), "forget") is not build(np.arange(3), "forget")
    assert (build.hits, build.misses) == (1, 6)


def test_a_memoised_builder_keeps_at_most_its_size():
    built = []
    square = memoised(lambda x: built.append(x) or x * x, size=2)
    for x in (1, 2, 3, 1):
        square(x)
    assert built == [1, 2, 3, 1]  # 1 was dropped when 3 came


def test_memo_plots_memoises_figure_builders_only():
    from tmu import plots

    memo = MemoPlots(plots)
    assert memo.CAPTIONS is plots.CAPTIONS and memo.method_names is plots.method_names
    assert memo.per_class_accuracy is memo.per_class_accuracy  # one cache per builder
    assert memo.per_class_accuracy.__name__ == "per_class_accuracy"
    assert memo.quadrant_table.__wrapped__ is plots.quadrant_table
    fractions = {
        "aligned_easy": 0.5,
        "aligned_hard": 0.25,
        "over_forgotten": 0.25,
        "under_forgotten": 0.0,
    }
    assert memo.quadrant_table(fractions, 4) is memo.quadrant_table(fractions, 4)


def test_no_view_changes_a_shared_figure():
    """Figures are shared by every tab: a page that changed one would change it for all."""
    found = [
        f"{p.name}:{node.lineno} .{node.func.attr}"
        for p in VIEWS
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in MUTATORS
    ]
    assert not found, found
    uses = sum("figures import" in p.read_text() for p in VIEWS)
    assert uses >= 5  # every page that draws tmu.plots figures draws them through the memo


@pytest.mark.slow
@pytest.mark.parametrize("page", ["alignment", "compare", "inspect"])
def test_a_rerun_of_a_result_page_builds_no_figure(tiny_run, page):
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    builders = [*figures.plots._builders.values(), *figures.plots_inspect._builders.values()]
    before = sum(b.misses for b in builders)
    assert before > 0 and len(at.get("plotly_chart")) > 0
    at.run()
    assert not at.exception
    builders = [*figures.plots._builders.values(), *figures.plots_inspect._builders.values()]
    assert sum(b.misses for b in builders) == before


def test_a_run_label_reads_its_config_once_and_survives_its_removal(tmp_path, monkeypatch):
    import json

    from dashboard.service import runs

    run = tmp_path / "abcdef123456"
    run.mkdir()
    cfg = {"dataset": "digits", "forget": "random:0.1", "methods": ["tmu"], "gold_seeds": 2}
    (run / "config.json").write_text(json.dumps({**cfg, "seed": 4}))
    reads = []
    real = runs.json.loads
    monkeypatch.setattr(runs.json, "loads", lambda text: reads.append(1) or real(text))
    label = runs.run_label(run)
    assert label == "digits · random:0.1 · tmu · 2 gold · seed 4 · abcdef"
    assert runs.run_label(run) == label and len(reads) == 1  # the pickers' every rerun: no read
    (run / "config.json").unlink()  # evicted by the store budget while a picker lists it
    assert runs.run_label(run) == "run abcdef (its config is gone)"
