"""dashboard.service without Streamlit: forget-set modes, selections, id lists, the embedding job,
loading a finished run."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from tmu.forget import parse_forget

from dash_helpers import ROOT, tiny_state


def test_state_keys_are_named_constants():
    """Pages and ui.py name session-state keys through service.Key, never as "w.*" literals."""
    import re

    for path in [ROOT / "dashboard" / "ui.py", *(ROOT / "dashboard" / "views").glob("*.py")]:
        assert not re.search(r"[\"'](w|sel|job|run|pick)\.[a-z_]+[\"']", path.read_text()), path


@pytest.mark.slow
def test_service_imports_without_streamlit():
    code = "import sys; import dashboard.service; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.parametrize(
    "mode, spec",
    [
        ("random fraction", "random:0.1"),
        ("whole classes", "class:3"),
        ("fraction of one class", "subclass:3:0.3"),
        ("mislabeled images", "mislabeled:0.1"),
    ],
)
def test_forget_modes_resolve(tmu_home, mode, spec):
    from dashboard import service

    state = tiny_state()
    state["w.forget_mode"] = mode
    check = service.check_forget(state)
    assert check.spec == spec and check.error is None and len(check.ids) > 0
    if mode in ("whole classes", "fraction of one class"):
        assert list(check.per_class) == ["3"]
    captions = service.forget_captions(check, "digits", 4)
    if mode == "mislabeled images":
        # id: true class→given label, and the given label is always another class
        true = service.pool("digits").y.numpy()[check.ids]
        assert (check.given != true).all() and len(check.given) == len(check.ids)
        assert captions[0] == f"{check.ids[0]}: {true[0]}→{check.given[0]}"
    else:
        assert check.given is None and captions == [str(i) for i in check.ids[:4]]


def test_point_and_click_selection(tmu_home):
    from dashboard import service

    state = tiny_state()
    state["w.forget_mode"] = "point and click"
    assert "no sample selected" in service.check_forget(state).error
    train = service.thumbnail_table("digits", 0, None, 0)["id"].tolist()
    event = {
        "selection": {
            "points": [
                {"customdata": {"0": train[0]}},
                {"customdata": [train[1]]},
                {"customdata": train[2]},
                {"x": 1.0},
            ]
        }
    }
    assert service.ids_from_selection(event) == train[:3]
    assert service.add_ids(state, service.ids_from_selection(event)) == 3
    assert service.add_ids(state, train[:2]) == 0
    check = service.check_forget(state)
    assert check.error is None and check.ids.tolist() == sorted(train[:3])
    service.clear_selection(state)
    assert "no sample selected" in service.check_forget(state).error


def test_invalid_selections_are_explained(tmu_home):
    from dashboard import service

    state = tiny_state()
    state["w.forget_mode"] = "whole classes"
    state["w.classes"] = []
    assert "at least one class" in service.check_forget(state).error
    state["w.classes"] = list(range(10))
    assert "whole training set" in service.check_forget(state).error
    state["w.forget_mode"] = "point and click"
    state["sel.ids"] = [10**6]
    assert "out of range" in service.check_forget(state).error
    assert service.submit_run(state)[1].startswith("invalid forget set")
    with pytest.raises(ValueError, match="ids must be integers"):
        service.parse_id_list("1, 2, x")
    assert service.parse_id_list("1,2\n3") == [1, 2, 3]
    assert service.id_list_text([4, 5]) == "4\n5\n"


@pytest.mark.slow
def test_embedding_job(tiny_run, tmu_home):
    from dashboard import service

    be = service.backend(tmu_home)
    state = tiny_state()
    job, emb = service.embedding(state, be)
    job = be.wait(job.id, timeout=120)
    job, emb = service.embedding(state, be)
    assert job.state == "done" and emb["xy"].shape == (len(emb["ids"]), 2)
    assert emb["tsne"].shape == emb["xy"].shape and np.isfinite(emb["tsne"]).all()
    assert np.array_equal(
        np.sort(emb["ids"]), np.sort(service.thumbnail_table("digits", 0, None, 0, 10**6)["id"])
    )


def test_loaded_run_views(tiny_run):
    from dashboard import service

    lr = service.load(tiny_run)
    quads = service.quadrant_ids(lr, "tmu")
    assert sum(len(v) for v in quads.values()) == len(lr.split["forget"])
    assert service.predictor_arrays(lr)["twin_x"].shape[1] == 3
    exp = service.explain_samples(tiny_run, "tmu", lr.split["forget"][:2])
    assert list(exp.maps["Grad-CAM"]) == ["original", "gold", "tmu"]
    assert exp.maps["Grad-CAM"]["tmu"].shape == (2, 8, 8)
    # One gold on every single-sample view: the argmax of the gold seeds' mean softmax.
    mean = np.mean([lr.predictions[f"gold_{k}/forget"] for k in range(lr.config.gold_seeds)], 0)
    assert np.array_equal(service.gold_prediction(lr), mean.argmax(1))
    y = lr.dataset.tensors[1].numpy()
    over = np.isin(lr.split["forget"], quads["over_forgotten"])
    assert (mean.argmax(1)[over] == y[quads["over_forgotten"]]).all()
    assert sum(service.quadrant_fractions(quads).values()) == pytest.approx(1.0)
    disagree = service.disagreement_ids(lr, "tmu")
    assert np.array_equal(
        disagree, lr.split["forget"][lr.predictions["tmu/forget"].argmax(1) != mean.argmax(1)]
    )
    assert "<html>" in service.export_html(lr.report) and "method" in service.export_csv(lr.report)
    assert tiny_run in service.finished_runs()


def test_embedding_colourings_after_a_run(tiny_run):
    from dashboard import service

    lr = service.load(tiny_run)
    assert service.color_options(None, "digits", 0) == ["class"]
    assert service.color_options(lr, "digits", lr.config.seed + 1) == ["class"]  # another split
    assert service.color_options(lr, "digits", lr.config.seed) == ["class", "gold", "agreement"]
    train, forget = lr.split["train"], lr.split["forget"]
    groups, names = service.forget_status(lr, train, "gold")
    assert names == ["not in D_f", "D_f: gold right", "D_f: gold wrong"]
    in_f = np.isin(train, forget)
    assert (groups[~in_f] == 0).all() and (groups[in_f] > 0).all()
    right = service.gold_right(lr)
    assert np.array_equal(groups[in_f], np.where(right, 1, 2))  # train and forget are both sorted
    groups, _ = service.forget_status(lr, train, "agreement")
    agree = lr.predictions["tmu/forget"].argmax(1) == service.gold_prediction(lr)
    assert np.array_equal(groups[in_f], np.where(agree, 1, 2))


@pytest.mark.slow
def test_twin_estimate_job_before_a_run(tiny_run, tmu_home):
    from dashboard import service

    be, state = service.backend(tmu_home), tiny_state()
    assert service.estimate(state, be) == (None, None)  # nothing asked yet
    job, est = service.estimate(state, be, submit=True)
    be.wait(job.id, timeout=240)
    job, est = service.estimate(state, be)
    check = service.check_forget(state)
    assert job.state == "done" and est["forget"] == len(check.ids)
    assert 0 <= est["twin_hard_rate"] <= 1 and 0 <= est["predicted_hard"] <= est["forget"]
    assert est["expected_wrong"] == pytest.approx(est["twin_hard_rate"] * est["forget"])
    # The tiny run of the same settings has the same twin: its report says the same.
    report = service.load(tiny_run).report
    assert est["twin_hard_rate"] == pytest.approx(1 - report["twin"]["easy_rate"])


@pytest.mark.parametrize(
    "name", ["memorised-mislabels", "noisy-labels", "easy-random", "forget-class"]
)
def test_every_scenario_becomes_the_config_of_tmu_run_scenario(tmu_home, name):
    """The dashboard's picker and the CLI's --scenario give the same run."""
    from dashboard import service
    from tmu.cli import build_parser, config_from_args

    state = {}
    service.init_state(state)
    state["w.quick"] = False
    service.apply_scenario(state, name)
    assert service.current_scenario(state) == name
    cli = config_from_args(build_parser().parse_args(["run", "--scenario", name]))
    mine = service.make_config(state)
    # A class `*` is resolved for the seed on the page (the picker shows the class).
    assert dataclasses.replace(mine, forget=cli.forget) == cli
    p = service.pool(cli.dataset)
    resolve = lambda spec: parse_forget(spec).resolve(  # noqa: E731
        p.y.numpy(), service.roles(cli.dataset, 0)[0], p.classes, 0
    )
    assert np.array_equal(resolve(mine.forget), resolve(cli.forget))
    state["w.seed"] = 3  # the seed is no part of a scenario, but its class `*` is
    assert service.current_scenario(state) == (None if name == "forget-class" else name)


def test_the_default_settings_are_the_default_scenario(tmu_home, monkeypatch):
    from dashboard import service
    from tmu.scenarios import DEFAULT_SCENARIO

    monkeypatch.delenv("TMU_DASHBOARD_DATASET", raising=False)
    state = {}
    service.init_state(state)
    assert service.current_scenario(state) == DEFAULT_SCENARIO


@pytest.mark.slow
def test_the_twins_hardness_map_paints_every_training_sample(tmu_home):
    """Before any selection or run: the twin predictor's p(hard) of all of D, no gold model."""
    from dashboard import service

    state = tiny_state()
    state["w.forget_mode"] = "point and click"  # nothing selected yet
    be = service.backend(tmu_home)
    job, hard = service.hardness_map(state, be, submit=True)
    job = be.wait(job.id, timeout=240)
    assert job.state == "done", job.error
    _, hard = service.hardness_map(state, be)
    train = service.roles("digits", 0)[0]
    assert np.array_equal(hard["ids"], train)
    assert ((hard["p_hard"] >= 0) & (hard["p_hard"] <= 1)).all() and hard["p_hard"].std() > 0
    groups, names, colors = service.hardness_groups(hard, train[:50])
    assert len(names) == len(colors) == 4 and set(groups) <= {0, 1, 2, 3}
    cfg = service.hardness_config(state)
    assert cfg.forget == "random:0.1" and cfg.methods == ("tmu",) and cfg.gold_seeds == 2


def test_every_action_button_acts_in_a_keyed_callback():
    """A click behind `if st.button(...)` acts only if that rerun reaches the line (a rerun cut
    short by another event loses it); a keyed `on_click` callback runs before the next rerun."""
    import ast

    buttons = 0
    for path in (ROOT / "dashboard" / "views").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "button":
                given = {k.arg for k in node.keywords}
                assert {"on_click", "key"} <= given, f"{path.name}:{node.lineno}"
                buttons += 1
    assert buttons >= 10
