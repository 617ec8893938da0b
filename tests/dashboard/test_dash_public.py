"""No server path reaches the browser (issue 18): every message a page shows from an error, and
every export of the Compare page, goes through `dashboard.service.public`."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from dash_helpers import ROOT
from dashboard import service
from dashboard.service.public import public_report, public_text

VIEWS = sorted((ROOT / "dashboard" / "views").glob("*.py")) + [ROOT / "dashboard" / "ui.py"]
WEIGHTS_HASH = "0123456789abcdef"


@pytest.fixture
def roots(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A store and a data root that are server paths (under tmp_path)."""
    store, data = tmp_path / "srv" / "store", tmp_path / "srv" / "data"
    monkeypatch.setenv("TMU_HOME", str(store))
    monkeypatch.setenv("TMU_DATA", str(data))
    return store, data


@pytest.mark.parametrize(
    "text, public",
    [
        ("cannot write {store}/jobs/a1/job.json: full", "cannot write <store>/jobs/a1/job.json"),
        ("imagefolder:{data}/imported/cats has no images", "imagefolder:cats has no images"),
        ("bad {store}/uploads/weights/{h}.pt (shape)", "bad uploaded weights {h} (shape)"),
        ("[Errno 2] No such file: '/etc/passwd'", "No such file: '<server>/passwd'"),
        ("a class folder {data}/x/3 is empty", "a class folder <data>/x/3 is empty"),
        ("lr 1/255 and/or 0.5/0.75", "lr 1/255 and/or 0.5/0.75"),
        ("see https://docs.ray.io/en/latest/a.html", "see https://docs.ray.io/en/latest/a.html"),
        ("--set train.batch_size=N or imagefolder:cats", "--set train.batch_size=N or imagefolder"),
    ],
)
def test_a_message_names_no_server_path(roots, text, public):
    store, data = roots
    out = public_text(text.format(store=store, data=data, h=WEIGHTS_HASH))
    assert public.format(h=WEIGHTS_HASH) in out, out
    assert str(store.parent) not in out and "/etc" not in out


def test_an_exception_and_a_report_are_made_public(roots):
    store, data = roots
    err = OSError(f"cannot write {store}/jobs/x/job.json")
    assert service.public_message(err) == "cannot write <store>/jobs/x/job.json"
    report = {
        "config": {
            "dataset": f"imagefolder:{data}/imported/cats",
            "original_weights": f"{store}/uploads/weights/{WEIGHTS_HASH}.pt",
            "seeds": [1, 2],
        },
        "dataset": {"name": f"imagefolder:{data}/imported/cats", "n": 10},
        "notes": [f"read {data}/imported/cats/0/a.png"],
    }
    out = public_report(report)
    assert out["config"]["dataset"] == "imagefolder:cats"
    assert out["config"]["original_weights"] == f"uploaded weights {WEIGHTS_HASH}"
    assert out["config"]["seeds"] == [1, 2] and out["dataset"]["n"] == 10
    text = service.export_json(report)
    assert str(store.parent) not in text and json.loads(text)["dataset"]["name"] == (
        "imagefolder:cats"
    )


def _shown_values(tree: ast.AST):
    """(line, source) of every value a view shows in st.error / warning / info / success (or a
    column's), an f-string's parts one by one."""
    shows = {"error", "warning", "info", "success", "exception", "toast"}
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in shows
        ):
            continue
        for arg in node.args:
            parts = arg.values if isinstance(arg, ast.JoinedStr) else [arg]
            for part in parts:
                value = part.value if isinstance(part, ast.FormattedValue) else part
                if not isinstance(value, ast.Constant):
                    yield node.lineno, value


def _is_public(value: ast.AST, public_names: set[str] = frozenset()) -> bool:
    """A call of service.public_text / public_message, or a name assigned one in the module."""
    if isinstance(value, ast.Name):
        return value.id in public_names
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr in ("public_text", "public_message")
    )


def _public_names(tree: ast.AST) -> set[str]:
    return {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _is_public(node.value)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def test_every_error_a_page_shows_goes_through_the_sanitiser():
    """An exception, a job's error or a message returned by the service may hold a server path:
    a page shows it only through service.public_text / public_message (a new one fails here)."""
    risky = ("err", "error", "msg", "message", "bad", "why", "reason")
    leaks = []
    for path in VIEWS:
        tree = ast.parse(path.read_text())
        public = _public_names(tree)
        for line, value in _shown_values(tree):
            names = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(value) if isinstance(n, ast.Attribute)}
            if names & set(risky) and not _is_public(value, public):
                leaks.append(f"{path.name}:{line}: {ast.unparse(value)}")
    assert not leaks, leaks
    assert sum(1 for p in VIEWS for _ in _shown_values(ast.parse(p.read_text()))) > 10


@pytest.mark.slow
def test_the_compare_exports_name_no_server_path(tiny_run, tmu_home):
    """The JSON, CSV and HTML exports of a real run whose dataset is an imported folder and whose
    original model is an uploaded file."""
    from dashboard.service.data import data_root

    report = service.load(tiny_run).report
    imported = f"imagefolder:{data_root()}/imported/cats"
    weights = f"{Path(tmu_home).resolve()}/uploads/weights/{WEIGHTS_HASH}.pt"
    report = {
        **report,
        "config": {**report["config"], "dataset": imported, "original_weights": weights},
        "dataset": {**report["dataset"], "name": imported},
    }
    for export in (service.export_json, service.export_csv, service.export_html):
        text = export(report)
        assert str(tmu_home) not in text and str(data_root()) not in text, export.__name__
    assert "imagefolder:cats" in service.export_html(report)


def test_what_the_user_typed_is_kept_and_public_text_is_final(roots):
    """A dataset name '/tmp/abs' is the visitor's own value: the refusal names it as typed."""
    store, _ = roots
    err = ValueError(f"dataset name '/tmp/abs' is not allowed (store {store})")
    text = service.public_message(err, keep=["/tmp/abs"])
    assert text == "dataset name '/tmp/abs' is not allowed (store <store>)"
    assert service.public_text(text) is text  # made public once: never changed again
    assert service.public_text(str(text)) != text  # a plain copy is sanitised as any text
