"""The Inspect page (AppTest) and its service: each view of the tiny run against gold, read from
the run folder's inspect.npz; a click on a prediction-matrix cell shows exactly its samples."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dash_helpers import ROOT

APP = str(ROOT / "dashboard" / "app.py")


def inspect_page(run) -> AppTest:
    """The Inspect page showing `run` (other tests may have finished newer runs in the store)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run.path"] = str(run)
    at.run()
    at.switch_page("views/inspect.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Inspect"
    return at


def test_every_view_is_drawn(tiny_run):
    at = inspect_page(tiny_run)
    assert [t.label for t in at.tabs] == [
        "Prediction matrix",
        "Embeddings",
        "Layers (CKA)",
        "Attack",
    ]
    charts = {}
    for tab in ("Prediction matrix", "Embeddings", "Layers (CKA)", "Attack"):
        at.session_state["insp.tab"] = tab  # lazy tabs: only the open one runs
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        charts[tab] = len(at.get("plotly_chart"))
    assert charts == {"Prediction matrix": 2, "Embeddings": 1, "Layers (CKA)": 2, "Attack": 2}
    table = at.dataframe[0].value
    assert set(table["model"]) == {"original", "tmu", "gold_0", "gold_1"}  # the picked method
    assert set(table["attack"]) == {
        "loss threshold",
        "per-class threshold",
        "LiRA (gold as OUT models)",
    }
    assert table["AUC D_f vs T"].between(0, 1).all()
    at.session_state["insp.tab"] = "Prediction matrix"
    at.run()
    assert "Click a marker to see its samples." in [c.value for c in at.caption]


def test_a_clicked_cell_shows_exactly_its_samples(tiny_run):
    from dashboard import service

    lr = service.load(tiny_run)
    mine, _ = service.matrices(lr, "tmu")
    r, c = map(int, np.argwhere(mine.counts)[0])
    at = inspect_page(tiny_run)
    at.session_state["insp.cell"] = (r, c)  # what a click on that marker stores
    at.run()
    n = int(mine.counts[r, c])
    assert any(
        f"{n} sample(s)** gold puts in class {r} and tmu in class {c}" in m.value
        for m in at.markdown
    )
    shown = [[img.caption for img in el.proto.imgs] for el in at.get("image")]
    ids = mine.cell(r, c)[:40]
    assert [f"{i}: label " for i in ids] in [
        [t.split("label ")[0] + "label " for t in s] for s in shown
    ]


def test_cell_from_a_plotly_click_event():
    from dashboard import service

    event = {"selection": {"points": [{"customdata": {"0": 23}, "x": 3, "y": 2}]}}
    assert service.cell_from_selection(event, 10) == (2, 3)
    assert service.cell_from_selection({"selection": {"points": []}}, 10) is None


def test_a_linked_selection_rings_the_points_in_every_panel(tiny_run):
    from dashboard import service

    ins = service.inspection(tiny_run)
    picked = [int(i) for i in ins.embedding.ids[ins.embedding.sets == "forget"][:3]]
    at = inspect_page(tiny_run)
    at.session_state["insp.tab"] = "Embeddings"
    at.session_state["insp.selection"] = picked
    at.run()
    assert any("**3 selected**" in m.value for m in at.markdown)
    fig = next(c for c in at.get("plotly_chart") if '"selected"' in c.proto.spec)
    assert fig.proto.spec.count('"name":"selected"') == 3  # one ring trace per panel


@pytest.mark.parametrize("color", ["class", "gold", "agreement"])
def test_embedding_colours(tiny_run, color):
    from dashboard import service

    ins = service.inspection(tiny_run)
    view = service.embedding_view(ins, "tmu", color, [str(c) for c in range(10)])
    assert [t for t, _ in view.panels] == ["original", "tmu", "gold (seed 0)"]
    assert all(xy.shape == (len(view.ids), 2) for _, xy in view.panels)
    assert view.groups.max() < len(view.names)
    if color == "agreement":
        e = ins.embedding
        assert np.array_equal(view.groups == 0, e.agrees("tmu", "gold_0"))


def test_cka_view_has_the_gold_floor(tiny_run):
    from dashboard import service

    layers, curves, floor = service.cka_view(service.inspection(tiny_run), "tmu", "forget")
    assert layers == ["block1", "block2", "embed", "head"]
    assert set(curves) == {"original", "tmu"} and floor is not None and len(floor) == 4
    assert all(0 <= v <= 1 + 1e-6 for v in np.concatenate([*curves.values(), floor]))


def test_a_run_without_inspection_data_says_so(tiny_run, tmp_path):
    from dashboard import service

    old = tmp_path / "old"
    shutil.copytree(tiny_run, old)
    (old / "inspect.npz").unlink()
    assert service.inspection(old) is None
    assert service.matrices(service.load(old), "tmu")[0].counts.sum() > 0  # still drawn
