"""The code keeps one format and passes the linter (ruff, configured in pyproject.toml): lines of
at most 100 characters, no unused imports or undefined names."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_code_is_formatted():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_linter_passes():
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_library_never_names_the_app():
    """No module of tmu/ imports, loads or ships the dashboard: a Ray worker gets tmu alone, and
    every job kind's task (`module:function`) lives in tmu."""
    import ast

    from tmu import jobs, ray_backend, tasks  # noqa: F401  (registers every job kind)

    for path in (ROOT / "tmu").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] == "dashboard" for n in names), path
    assert ray_backend.PACKAGES == ("tmu",)
    assert all(k.task_path.startswith("tmu.") for k in jobs.JOB_KINDS.values()), jobs.JOB_KINDS
    assert {"run", "embedding", "estimate", "hardness"} <= set(jobs.JOB_KINDS)
