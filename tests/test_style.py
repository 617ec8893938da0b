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
