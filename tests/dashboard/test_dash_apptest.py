"""Streamlit AppTest: every page launches, forget-set modes, a tiny job end to end, charts
appear."""

import time

import pytest
from streamlit.testing.v1 import AppTest

from dash_helpers import ROOT

APP = str(ROOT / "dashboard" / "app.py")
PAGES = ["data", "tour", "forget", "run", "alignment", "inspect", "attributions", "compare"]


def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_pages_without_a_run(tmp_path, monkeypatch, tmu_home):
    monkeypatch.setenv("TMU_HOME", str(tmp_path))
    at = app()
    assert not at.exception
    assert at.title[0].value == "Data"
    for page in ("alignment", "inspect", "attributions", "compare"):
        goto(at, page)
        assert any("No finished run yet" in i.value for i in at.info)


@pytest.mark.parametrize(
    "page, charts",
    [
        ("data", 1),
        ("tour", 0),  # the default scenario's run is not stored: a Run button
        ("forget", 0),
        ("run", 0),
        ("alignment", 7),
        ("inspect", 2),  # lazy tabs: the prediction matrices
        ("attributions", 1),
        ("compare", 1),
    ],
)
def test_every_page_launches(tiny_run, page, charts):
    at = goto(app(), page)
    assert at.title[0].value.startswith({"forget": "Forget set"}.get(page, page.capitalize()))
    assert len(at.get("plotly_chart")) >= charts
    if charts:
        assert at.caption, "each chart carries a caption"


@pytest.mark.parametrize(
    "mode",
    [
        "random fraction",
        "whole classes",
        "fraction of one class",
        "point and click",
        "mislabeled images",
    ],
)
def test_forget_modes(tiny_run, mode):
    at = goto(app(), "forget")
    at.radio(key="w.forget_mode").set_value(mode).run()
    assert not at.exception
    if mode == "point and click":
        assert any("no sample selected" in e.value for e in at.error)
        at.session_state["sel.ids"] = [int(i) for i in at.session_state["sel.ids"]] + [0, 4]
        at.run()
        # a tiny selection is valid only if both ids are training ids; either way it is explained
        assert at.success or at.error
    else:
        assert any("D_f has" in s.value for s in at.success)


@pytest.mark.slow
def test_run_tiny_job_end_to_end(tiny_run):
    at = goto(app(), "run")
    at.number_input(key="w.gold_seeds").set_value(2)
    at.toggle(key="w.quick").set_value(True)
    at.session_state["w.sub_fraction"] = 0.3
    at.button[0].click().run()  # the "Run" button (the first on the page)
    deadline = time.monotonic() + 120
    while not any(s.value == "Done" for s in at.success):
        assert time.monotonic() < deadline, "the job did not finish"
        assert not at.error, [e.value for e in at.error]
        time.sleep(0.5)
        at.run()
    goto(at, "alignment")
    assert len(at.get("plotly_chart")) >= 6


@pytest.mark.slow
def test_twin_estimate_on_the_forget_page(tiny_run):
    at = goto(app(), "forget")
    at.session_state["w.sub_fraction"] = 0.3  # the tiny run's forget set: its twin is stored
    at.run()
    next(b for b in at.button if b.label == "Estimate with the twin").click().run()
    deadline = time.monotonic() + 120
    while not any("The twin estimates" in i.value for i in at.info):
        assert time.monotonic() < deadline, "the estimate did not finish"
        assert not at.exception and not at.error, [e.value for e in at.error]
        time.sleep(0.5)
        at.run()
    text = next(i.value for i in at.info if "The twin estimates" in i.value)
    assert "TMU's predictor would flip" in text


def test_a_down_ray_cluster_is_explained_on_every_page(tmp_path, monkeypatch):
    """TMU_BACKEND=ray with nothing at the address: each page says so and what to do; nothing
    crashes, and the next click tries again."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TMU_HOME", str(tmp_path))
    monkeypatch.setenv("TMU_BACKEND", "ray")
    monkeypatch.setenv("TMU_RAY_ADDRESS", f"127.0.0.1:{port}")
    at = app()
    for page in PAGES:
        goto(at, page)
        assert any(
            f"cannot reach the Ray cluster at 127.0.0.1:{port}" in e.value for e in at.error
        ), page
        assert not at.button  # the page stops before its widgets


def test_an_unknown_backend_names_the_value(tmp_path, monkeypatch):
    monkeypatch.setenv("TMU_HOME", str(tmp_path))
    monkeypatch.setenv("TMU_BACKEND", "slurm")
    at = goto(app(), "run")
    assert any("TMU_BACKEND='slurm' is unknown; use local or ray" in e.value for e in at.error)


def test_the_scenario_picker_sets_every_setting_and_says_when_they_changed(tiny_run):
    at = goto(app(), "forget")
    at.selectbox(key="w.scenario").set_value("noisy-labels").run()
    assert not at.exception
    state = at.session_state
    assert (state["w.dataset"], state["w.recipe"], state["w.label_noise"]) == (
        "mnist5k",
        "memorise",
        0.2,
    )
    assert state["w.forget_mode"] == "random fraction" and state["w.rate_rule"] is True
    assert any("**noisy-labels**" in i.value for i in at.info)
    assert any("D_f has 300 samples" in s.value for s in at.success)
    assert any("Scenario** noisy-labels" in m.value for m in at.sidebar.markdown)
    at.slider(key="w.random_fraction").set_value(0.2).run()
    assert any("Settings changed since the scenario 'noisy-labels'" in c.value for c in at.caption)


def test_the_regime_is_set_on_the_data_page(tiny_run):
    at = goto(app(), "data")
    at.selectbox(key="w.recipe").set_value("standard").run()
    at.slider(key="w.label_noise").set_value(0.1).run()
    at.slider(key="w.holdout").set_value(0.4).run()
    assert not at.exception
    assert any(
        "label noise 10%" in m.value and "holdout 40%" in m.value for m in at.sidebar.markdown
    )
    holdout = next(m.value for m in at.metric if m.label == "H (holdout)")
    assert int(holdout) == round(0.4 * 1797)  # digits: a smaller D, more held out


def test_alignment_shows_the_twin_fit_the_flips_and_where_the_gap_lives(tiny_run):
    at = goto(app(), "alignment")
    assert any(h.value == "Where the gap lives" for h in at.subheader)
    assert len(at.get("plotly_chart")) >= 10  # seven before, plus two gap views and two-sided MIA
    assert any(h.value == "Does the twin mirror the original?" for h in at.subheader)
    labels = [m.label for m in at.metric]
    assert {"Original fits D", "Original fits D_f", "Twin model fits H_f"} <= set(labels)
    assert any("**tmu's flips**" in m.value for m in at.markdown)
