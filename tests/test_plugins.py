"""The plug-in point (tmu.unlearn.registry, docs/plugins.md): the example of docs/plugins.md,
installed from the page itself as a fake distribution, is found through its entry point in this
process and in `python -m tmu methods` / `run` subprocesses; a broken plug-in only warns; and
`register` rejects every bad class with a message naming the problem."""

from __future__ import annotations

import doctest
import json
import logging
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from tmu.training import Part
from tmu.unlearn import (
    FAILED,
    METHODS,
    ORIGINS,
    Env,
    Method,
    Problem,
    RegistrationError,
    cache_tag,
    get_method,
    load_plugins,
    register,
)
from tmu.unlearn.finetune import FineTune

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
CPU = torch.device("cpu")


def blocks(lang: str) -> list[str]:
    """The fenced code blocks of docs/plugins.md in language `lang`."""
    return re.findall(rf"^```{lang}\n(.*?)^```$", DOC.read_text(), flags=re.M | re.S)


def install(site: Path, dist: str, version: str, entry_points: dict, modules: dict) -> None:
    """A fake installed distribution in `site` (a sys.path folder): its modules ({dotted name:
    source}) and a DIST-VERSION.dist-info folder with METADATA and entry_points.txt, which
    importlib.metadata reads as it reads a pip install."""
    for name, source in modules.items():
        *packages, leaf = name.split(".")
        folder = site.joinpath(*packages)
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(len(packages)):
            init = site.joinpath(*packages[: k + 1], "__init__.py")
            init.touch()
        (folder / f"{leaf}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[tmu.methods]\n{lines}")


def install_docs_example(site: Path) -> dict:
    """docs/plugins.md's plug-in, installed as its pyproject.toml block declares it; returns the
    parsed pyproject."""
    (code,), (toml,) = blocks("python"), blocks("toml")
    project = tomllib.loads(toml)["project"]
    eps = project["entry-points"]["tmu.methods"]
    (module,) = {v.partition(":")[0] for v in eps.values()}
    install(site, project["name"], project["version"], eps, {module: code})
    return project


@pytest.fixture(autouse=True)
def registry():
    """Leave the registry, its records and sys.modules as they were (other test modules list
    METHODS)."""
    saved = dict(METHODS), dict(ORIGINS), dict(FAILED), set(sys.modules)
    yield
    for live, old in zip((METHODS, ORIGINS, FAILED), saved):
        live.clear()
        live.update(old)
    for name in set(sys.modules) - saved[3]:
        if name.partition(".")[0] in ("my_unlearning", "broken_plugins", "broken_boom"):
            del sys.modules[name]


@pytest.fixture()
def site(tmp_path, monkeypatch) -> Path:
    """An empty folder at the front of sys.path."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def tmu_cli(args: list[str], site: Path, home: Path, timeout: float = 300):
    env = {
        **os.environ,
        "TMU_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "tmu", *args],
        cwd=home.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ----------------------------------------------------------------------------- the docs' example


def test_the_docs_hold_one_plugin_module_and_one_pyproject():
    assert len(blocks("python")) == 1 and len(blocks("toml")) == 1
    assert 'project.entry-points."tmu.methods"' in blocks("toml")[0]


def test_the_docs_example_is_registered_through_its_entry_point(site, tiny):
    project = install_docs_example(site)
    assert load_plugins() == {}
    cls = METHODS["shrink_perturb"]
    assert issubclass(cls, Method) and cls.__module__ == "my_unlearning.methods"
    origin = ORIGINS["shrink_perturb"]
    assert (origin.kind, origin.distribution, origin.version) == (
        "entry point",
        project["name"],
        project["version"],
    )
    (tag,) = cache_tag("shrink_perturb")
    assert "my-unlearning 0.1.0" in tag and origin.source_hash in tag
    assert cache_tag("finetune") == []  # built-ins keep their keys
    assert load_plugins() == {} and METHODS["shrink_perturb"] is cls  # loading twice: harmless
    # And it unlearns: a new, trained model, the original untouched.
    before = [p.detach().clone() for p in tiny.model.parameters()]
    forget = tiny.train[:30]
    problem = Problem(tiny.x, tiny.labels, np.setdiff1d(tiny.train, forget)[:300], forget, 10)
    out = get_method("shrink_perturb", epochs=1).unlearn(tiny.model, problem, Env(CPU, 0, None))
    assert type(out) is type(tiny.model) and not out.training
    assert all(torch.equal(a, p) for a, p in zip(before, tiny.model.parameters()))
    assert not all(torch.equal(a, p) for a, p in zip(before, out.parameters()))


def test_the_docs_register_session_runs_as_shown(site):
    install_docs_example(site)
    (session,) = blocks("pycon")
    test = doctest.DocTestParser().get_doctest(
        session, {"__name__": "notebook"}, "docs/plugins.md", str(DOC), 0
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted >= 6
    assert METHODS["gentle_shrink"].name == "gentle_shrink"
    assert ORIGINS["gentle_shrink"].kind == "register()"


@pytest.mark.slow
def test_the_docs_example_in_tmu_methods_and_tmu_run(site, tmp_path):
    install_docs_example(site)
    home = tmp_path / "store"
    listed = tmu_cli(["methods"], site, home)
    assert listed.returncode == 0, listed.stderr
    line = next(s for s in listed.stdout.splitlines() if s.startswith("shrink_perturb "))
    assert "Shrink and perturb" in line and "[plug-in: entry point my-unlearning 0.1.0]" in line
    assert "finetune " in listed.stdout and "FAILED" not in listed.stdout
    out = tmp_path / "out"
    args = [
        *("run", "--dataset", "digits", "--forget", "random:0.1", "--seed", "0"),
        *("--methods", "shrink_perturb", "--twin-tune", "shrink_perturb", "--gold-seeds", "1"),
        *("--device", "cpu", "--out", str(out), "-q"),
    ]
    for s in (
        "train.epochs=2",
        "train.batch_size=32",
        "twin.min_size=60",
        "twin.max_epochs=2",
        "twin.curriculum_epochs=1",
        "predictor.epochs=20",
        "predictor.folds=2",
        "method_params.shrink_perturb.epochs=1",
    ):
        args += ["--set", s]
    ran = tmu_cli(args, site, home)
    assert ran.returncode == 0, ran.stderr
    assert re.search(r"^shrink_perturb\s+\d", ran.stdout, re.M)
    assert re.search(r"^shrink_perturb\+twin\s+\d", ran.stdout, re.M)
    report = json.loads((out / "report.json").read_text())
    entry = report["models"]["shrink_perturb"]
    assert entry["params"] == {"epochs": 1, "lr": 0.02, "shrink": 0.5, "noise": 0.01}
    tuned = report["models"]["shrink_perturb+twin"]["twin_tuning"]["trials"]
    assert sorted(t["params"]["shrink"] for t in tuned) == [0.3, 0.5, 0.8]


# ----------------------------------------------------------------------------- broken plug-ins

GOOD = """
from tmu.training import Part
from tmu.unlearn import Method


class Good(Method):
    name = "good"
    description = "Fine-tune on the retain set (a plug-in that works)."
    defaults = {"epochs": 1, "lr": 0.01}

    def _unlearn(self, original, problem, env):
        r = problem.retain
        return self._finetune(original, problem, [Part(r, problem.labels[r])], env)


class Clash(Good):
    name = "finetune"


class Renamed(Good):
    name = "other_name"
"""
BROKEN = {
    "boom": ("broken_boom:Thing", "RuntimeError: boom at import"),
    "missing": ("no_such_module_xyz:Thing", "ModuleNotFoundError: No module named"),
    "not_a_method": ("json:dumps", "is not a subclass of tmu.unlearn.Method"),
    "finetune": (
        "broken_plugins:Clash",
        "the name 'finetune' is already taken by tmu.unlearn.finetune.FineTune (built-in)",
    ),
    "renamed": (
        "broken_plugins:Renamed",
        "the entry point is named 'renamed' but the class's name is 'other_name'",
    ),
}


def install_broken(site: Path) -> None:
    install(
        site,
        "broken-plugins",
        "0.1",
        {"good": "broken_plugins:Good", **{k: v for k, (v, _) in BROKEN.items()}},
        {"broken_plugins": GOOD, "broken_boom": "raise RuntimeError('boom at import')\n"},
    )


def test_a_broken_plugin_is_skipped_with_a_warning(site, caplog):
    install_broken(site)
    with caplog.at_level(logging.WARNING, logger="tmu.unlearn.registry"):
        failed = load_plugins()
    assert set(failed) == set(BROKEN) and failed == FAILED
    for name, (value, reason) in BROKEN.items():
        label = f"entry point '{name} = {value}' from broken-plugins 0.1"
        assert failed[name].startswith(label) and reason in failed[name]
        assert any(label in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    # tmu still works: the good plug-in and every built-in are there, the clash replaced nothing.
    assert METHODS["good"].__module__ == "broken_plugins" and METHODS["finetune"] is FineTune
    with pytest.raises(ValueError, match=r"unknown method 'missing'.*failed to load: entry point"):
        get_method("missing")


@pytest.mark.slow
def test_a_broken_plugin_shows_as_failed_in_tmu_methods(site, tmp_path):
    install_broken(site)
    home = tmp_path / "store"
    listed = tmu_cli(["methods"], site, home)
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    lines = {s.split()[0]: s for s in listed.stdout.splitlines()}
    assert "[plug-in: entry point broken-plugins 0.1]" in lines["good"]
    for name, (value, reason) in BROKEN.items():
        if name != "finetune":  # the built-in keeps its line; the clash is listed after
            assert (
                f"FAILED: entry point '{name} = {value}'" in lines[name] and reason in lines[name]
            )
        assert f"skipped the plug-in method entry point '{name} = {value}'" in listed.stderr
    assert "FAILED: entry point 'finetune = broken_plugins:Clash'" in listed.stdout
    # Asking for a skipped plug-in is a clean input error that says why it is missing.
    ran = tmu_cli(["run", "--dataset", "digits", "--methods", "missing", "-q"], site, home)
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    assert "unknown method(s) ['missing']" in ran.stderr


# ----------------------------------------------------------------------------- register()


class Valid(Method):
    name = "valid_plugin"
    description = "A valid method."
    defaults = {"epochs": 1, "lr": 0.01}
    grid = {"lr": [0.01, 0.02]}

    def _unlearn(self, original, problem, env):
        r = problem.retain
        return self._finetune(original, problem, [Part(r, problem.labels[r])], env)


def variant(**attrs) -> type:
    """A subclass of Valid with `attrs` changed (None: attribute deleted from the class body)."""
    body = {k: v for k, v in attrs.items() if v is not None}
    return type("Variant", (Valid,), body)


def bare(**attrs) -> type:
    """A Method subclass with only `attrs` (Valid's _unlearn included)."""
    return type("Bare", (Method,), {"_unlearn": Valid._unlearn, **attrs})


OK = {"name": "ok_name", "description": "d", "defaults": {"epochs": 1}}


@pytest.mark.parametrize(
    "cls, message",
    [
        (42, r"42 is not a subclass of tmu\.unlearn\.Method"),
        (dict, r"<class 'dict'> is not a subclass of tmu\.unlearn\.Method"),
        (Method, r"is not a subclass of tmu\.unlearn\.Method"),
        (bare(description="d", defaults={}), r"it does not set the class attribute `name`"),
        (variant(name=3), r"`name` must be a str, got 3"),
        (variant(name="my-method"), r"name 'my-method' must be an ASCII identifier"),
        (variant(name="1abc"), r"name '1abc' must be an ASCII identifier"),
        (variant(name="méthode"), r"name 'méthode' must be an ASCII identifier"),
        (variant(name="all"), r"name 'all' must be .* and not \['all'\]"),
        (variant(name="x" * 65), r"at most 64 characters"),
        (bare(name="n", defaults={}), r"it does not set the class attribute `description`"),
        (variant(description="  "), r"its `description` is empty"),
        (variant(description=["d"]), r"`description` must be a str, got \['d'\]"),
        (bare(name="n", description="d"), r"it does not set the class attribute `defaults`"),
        (variant(defaults=[("epochs", 1)]), r"`defaults` must be a dict, got \[\('epochs', 1\)\]"),
        (variant(defaults={"epochs": [1, 2]}), r"defaults\['epochs'\]=\[1, 2\]: a default must"),
        (variant(defaults={"my-key": 1}), r"hyper-parameter name 'my-key' in `defaults`"),
        (variant(grid={"bogus": [1]}), r"grid point \{'bogus': 1\}: unknown hyper-parameter"),
        (variant(grid={"lr": ["fast"]}), r"grid point \{'lr': 'fast'\}: .*lr='fast': expected"),
        (variant(grid={"lr": 0.1}), r"grid values must be non-empty lists, got \{'lr': 0\.1\}"),
        (variant(grid={"lr": []}), r"grid values must be non-empty lists"),
        (variant(grid="lr"), r"`grid` must be a dict of value lists or a list of dicts"),
        (variant(needs_predictor="yes"), r"`needs_predictor` must be True or False, got 'yes'"),
        (type("NoUnlearn", (Method,), OK), r"it does not implement `_unlearn"),
        (variant(name="finetune"), r"'finetune' is already taken by tmu\.unlearn\.finetune"),
    ],
)
def test_register_rejects_a_bad_class(cls, message):
    before = dict(METHODS)
    with pytest.raises(RegistrationError, match=message):
        register(cls)
    assert METHODS == before
    assert issubclass(RegistrationError, ValueError)  # the CLI's exit-2 input errors


def test_register_adds_replaces_and_decorates():
    assert register(Valid) is Valid and METHODS["valid_plugin"] is Valid
    assert ORIGINS["valid_plugin"].kind == "register()"
    assert register(Valid) is Valid  # the same class again: nothing to do
    assert get_method("valid_plugin", lr=0.05).params == {"epochs": 1, "lr": 0.05}

    @register
    class Decorated(Valid):
        name = "decorated_plugin"

    assert METHODS["decorated_plugin"] is Decorated
    with pytest.raises(RegistrationError, match=r"'decorated_plugin' is already taken"):
        register(variant(name="decorated_plugin"))

    @register(replace=True)
    class Mine(FineTune):
        description = "My own fine-tune."

    assert METHODS["finetune"] is Mine and ORIGINS["finetune"].kind == "register()"


def test_a_class_defined_again_replaces_its_earlier_self():
    # A notebook cell run twice defines a new class object of the same qualified name.
    def define():
        class Cell(Valid):
            name = "cell_plugin"

        return Cell

    first, second = define(), define()
    register(first)
    assert register(second) is second and METHODS["cell_plugin"] is second
