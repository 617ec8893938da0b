"""tmu.threads: tmu processes on one machine share its cores instead of spinning against each
other."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tmu import threads


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("TMU_CORES_DIR", str(tmp_path))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("TMU_SHARE_CORES", raising=False)
    monkeypatch.setattr(threads, "_registry", None)
    monkeypatch.setattr(threads, "cores", lambda: 4)
    before = torch.get_num_threads()
    yield tmp_path
    torch.set_num_threads(before)


@pytest.mark.slow
def test_a_lone_process_uses_every_core_and_shares_them_with_the_next(registry):
    assert threads.share_cores()
    assert threads.pid_file(os.getpid()) == registry / f"tmu-{os.getpid()}.pid"
    assert threads.pid_file(os.getpid()).is_file()
    assert torch.get_num_threads() == 4
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (registry / str(other.pid)).touch()
        assert threads.running() == 2
        assert threads.rebalance(force=True) == 2 and torch.get_num_threads() == 2
    finally:
        other.kill()
        other.wait()
    # a process that died without cleaning up no longer counts, and its file goes
    assert threads.rebalance(force=True) == 4
    assert not (registry / str(other.pid)).exists()


def test_a_cap_and_the_users_own_setting_are_respected(registry, monkeypatch):
    assert threads.share_cores(max_threads=1) and torch.get_num_threads() == 1
    monkeypatch.setattr(threads, "_registry", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert not threads.share_cores()
    assert threads.rebalance(force=True) is None  # not registered: left alone


def test_rebalance_is_a_no_op_without_registration(monkeypatch):
    monkeypatch.setattr(threads, "_registry", None)
    assert threads.rebalance(force=True) is None


@pytest.mark.slow
def test_the_cli_waits_passively():
    out = subprocess.run(
        [sys.executable, "-c", "import os, tmu; print(os.environ['OMP_WAIT_POLICY'])"],
        env={k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "PASSIVE"


DEAD_PID = 2**22 + 1  # above Linux's largest pid_max: no process has it


def test_running_deletes_only_the_pid_files_of_dead_tmu_processes(registry):
    """The registry may be a folder the user chose (TMU_CORES_DIR): a file tmu did not write
    survives, whatever its name; only a dead tmu process's pid file goes."""
    assert threads.share_cores()
    foreign = {
        "notes.txt": b"mine",
        "abc": b"",
        "12345": b"a user's data, not an empty pid file",
        f"tmu-{DEAD_PID}.pid.bak": b"",
    }
    for name, data in foreign.items():
        (registry / name).write_bytes(data)
    (registry / "77").mkdir()  # a folder named like a pid
    dead_new, dead_old = registry / f"tmu-{DEAD_PID}.pid", registry / str(DEAD_PID)
    dead_new.touch()
    dead_old.touch()  # the bare-pid form of older versions
    assert threads.running() == 1  # only this process is alive
    assert not dead_new.exists() and not dead_old.exists()
    for name, data in foreign.items():
        assert (registry / name).read_bytes() == data
    assert (registry / "77").is_dir()


def test_a_live_pid_file_of_either_form_counts(registry):
    assert threads.share_cores()
    assert threads.pid_file(os.getpid()).parent == registry
    assert threads.pid_file(os.getpid()).is_file()
    (registry / str(os.getppid())).touch()  # an older tmu's file for a live process
    assert threads.running() == 2
