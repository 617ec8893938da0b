"""The Tour: links checked against the registries (hostile ones are messages naming them, never
a path), the seven steps' numbers equal to the run record's, a step a run lacks says so, and the
page end to end (AppTest)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dash_helpers import ROOT

from dashboard.service import tour
from tmu.runs import load_run
from tmu.scenarios import DEFAULT_SCENARIO, SCENARIOS

APP = str(ROOT / "dashboard" / "app.py")


def test_a_link_round_trips_and_defaults_stay_out_of_it():
    req = tour.parse_link({"scenario": "noisy-labels", "seed": "3", "forget": "random:0.2"})
    assert req == tour.TourRequest("noisy-labels", "random:0.2", 3, "finetune", None)
    assert tour.link_of(req) == {"scenario": "noisy-labels", "seed": "3", "forget": "random:0.2"}
    assert tour.parse_link(tour.link_of(req)) == req
    assert tour.parse_link({}) == tour.TourRequest(DEFAULT_SCENARIO)
    own = tour.TourRequest("noisy-labels", "random:0.1", 0, "scrub", "0123456789abcdef")
    assert tour.link_of(own) == {
        "scenario": "noisy-labels",
        "seed": "0",
        "method": "scrub",
        "run": "0123456789abcdef",
    }


HOSTILE = [
    ({"scenario": "../../etc/passwd"}, "scenario='../../etc/passwd' is unknown"),
    ({"scenario": "nope"}, "scenario='nope' is unknown"),
    ({"seed": "-1"}, "seed='-1': a seed is an integer"),
    ({"seed": "1e9"}, "seed='1e9'"),
    ({"seed": "99999999999999999999"}, "seed='99999999999999999999'"),
    ({"seed": "٣"}, "seed='٣'"),
    ({"method": "tmu"}, "method='tmu': the method to contrast"),
    ({"method": "os.system"}, "method='os.system'"),
    ({"run": "../jobs/x"}, "run='../jobs/x': a run is named by its 16-hex-digit id"),
    ({"run": "/etc/passwd"}, "run='/etc/passwd'"),
    ({"run": "0123456789ABCDEF"}, "16-hex-digit id"),
    ({"forget": "ids:/etc/passwd"}, "forget='ids:/etc/passwd': a link names one of"),
    ({"forget": "ids:1,2,3"}, "a link names one of"),
    ({"forget": "random:2"}, "must lie strictly between 0 and 1"),
    ({"forget": "class:7", "scenario": "noisy-labels"}, "forgets by 'random'"),
    ({"forget": "class:" + "9" * 5000, "scenario": "forget-class"}, "in at most 64 characters"),
    ({"forget": "class:99", "scenario": "forget-class"}, "unknown class 99"),
    ({"forget": "mislabeled:x"}, "is not a number"),
    ({"debug": "1"}, r"unknown link parameter\(s\) \['debug'\]"),
    ({"scenario": "<script>alert(1)</script>"}, "is unknown"),
]


@pytest.mark.parametrize("params, message", HOSTILE, ids=[str(p)[:40] for p, _ in HOSTILE])
def test_a_bad_link_is_a_message_naming_the_value(params, message):
    with pytest.raises(tour.LinkError, match=message.replace("(", r"\(").replace(")", r"\)")
                       if "unknown link" not in message else message):  # fmt: skip
        tour.parse_link(params)


def test_the_forget_set_a_tour_offers_is_of_the_scenarios_kind():
    assert tour.forget_choices("noisy-labels") == ["random:0.1", "random:0.05", "random:0.2"]
    assert tour.forget_choices("forget-class")[:3] == ["class:*", "class:0", "class:1"]
    for name in SCENARIOS:
        for spec in tour.forget_choices(name):
            assert tour.check_forget_text(spec, name) == spec


def test_every_tour_number_is_the_run_records(tiny_run):
    report = load_run(tiny_run, load_data=False).report
    steps = tour.tour_steps(report, "finetune", None)
    assert [s.title[0] for s in steps] == list("1234567")
    for step in steps:
        assert not step.missing, step.title
        for name, (value, path) in step.facts.items():
            assert tour.at(report, path) == value, (step.title, name)
            if isinstance(value, float) and 0 <= value <= 1 and name not in ("auroc", "easy_rate"):
                assert f"{value:.1%}" in step.text, (step.title, name)
    assert f"**{report['dataset']['sizes']['forget']}**" in steps[0].text
    flips = report["models"]["tmu"]["flips"]
    assert f"**{flips['flips']}**" in steps[5].text and f"**{flips['on_gold']}**" in steps[5].text


def test_a_step_the_run_cannot_tell_says_why(tiny_run):
    report = load_run(tiny_run, load_data=False).report
    no_tmu = {**report, "models": {k: v for k, v in report["models"].items() if k != "tmu"}}
    no_tmu = {k: v for k, v in no_tmu.items() if k not in ("twin", "predictor")}
    steps = tour.tour_steps(no_tmu, "finetune", None)
    assert [s.missing is None for s in steps] == [True, True, True, False, False, False, False]
    assert "no twin" in steps[3].missing and "no TMU" in steps[6].missing


def tour_app(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    at.switch_page("views/tour.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_link_to_a_run_shows_its_seven_steps(tiny_run):
    at = tour_app(run=Path(tiny_run).name, method="random_label")
    assert [h.value for h in at.subheader] == [s.title for s in tour.tour_steps(
        load_run(tiny_run, load_data=False).report, "random_label", None)]  # fmt: skip
    assert len(at.get("plotly_chart")) >= 6 and not at.error
    assert at.query_params["run"] == Path(tiny_run).name
    assert at.query_params["method"] == "random_label"
    controls = [w for kind in ("selectbox", "number_input", "button", "slider", "radio")
                for w in at.get(kind) if w.key and w.key.startswith("w.tour")]  # fmt: skip
    assert len(controls) == 4  # scenario, forget set, seed, contrast (+ Run when not stored)


def test_a_bad_link_is_explained_and_shows_the_default_tour(tiny_run):
    at = tour_app(scenario="../../etc", seed="x")
    assert any("This link cannot be followed" in e.value for e in at.error)
    assert all("/" not in e.value.split("scenario=")[1][:3] for e in at.error)
    assert at.session_state["w.tour_scenario"] == DEFAULT_SCENARIO


def test_a_run_that_is_not_stored_offers_a_run_button(tmp_path, monkeypatch):
    monkeypatch.setenv("TMU_HOME", str(tmp_path))
    at = tour_app(scenario="easy-random", seed="7")
    assert any("is not stored yet" in i.value for i in at.info)
    assert any(b.label == "Run" for b in at.button)
    assert "prepare --scenario easy-random --seeds 7" in " ".join(i.value for i in at.info)
