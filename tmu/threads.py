"""Sharing the machine's cores between tmu processes (a classroom on one server, a sweep with
several workers, the CLI next to the dashboard).

Two torch processes with 2 intra-op threads each on 2 cores spin against each other: a digits run
took 16 s alone and 316 s when two ran at once. Two measures, both on by default for the command
line and the job workers:

* `OMP_WAIT_POLICY=PASSIVE` (set before torch loads OpenMP, in `tmu/__init__.py`): an idle
  OpenMP thread sleeps instead of spinning on a core another process needs;
* `share_cores()` registers this process in a folder of running tmu processes (one empty file
  `tmu-PID.pid` per process, removed at exit; a dead process's file is removed by the next look,
  and nothing else in the folder is ever touched), and `rebalance()` (called by the training
  loop at every epoch) sets torch's threads to the cores divided by the processes now running,
  at least one: a run started alone uses every core, and gives half back when a second starts.

A process whose threads the user set (`OMP_NUM_THREADS`) or that never called `share_cores()`
(the library used from a notebook, the tests) is left alone.
"""

from __future__ import annotations

import atexit
import os
import re
import stat
import tempfile
import time
from pathlib import Path

_registry: Path | None = None
_cap: int | None = None
_last = 0.0
CHECK_EVERY = 1.0  # seconds between two looks at the registry


def registry_dir() -> Path:
    """One folder per user on this machine: `$TMU_CORES_DIR`, else the temp dir."""
    base = (
        os.environ.get("TMU_CORES_DIR") or Path(tempfile.gettempdir()) / f"tmu-cores-{os.getuid()}"
    )
    return Path(base)


def share_cores(max_threads: int | None = None) -> bool:
    """Register this process so that it shares the cores with the other tmu processes (using at
    most `max_threads`); returns whether it does (not when the user fixed the threads with
    OMP_NUM_THREADS or TMU_SHARE_CORES=0)."""
    global _registry, _cap
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("TMU_SHARE_CORES") == "0":
        return False
    folder = registry_dir()
    folder.mkdir(parents=True, exist_ok=True)
    me = pid_file(os.getpid(), folder)
    me.touch()
    atexit.register(lambda: me.unlink(missing_ok=True))
    _registry, _cap = folder, max_threads
    rebalance(force=True)
    return True


PID_FILE = re.compile(r"tmu-(\d+)\.pid|(\d+)")
"""The names of registry files: `tmu-PID.pid`, or a bare PID (what tmu 0.2.0 and earlier wrote)."""


def pid_file(pid: int, folder: Path | None = None) -> Path:
    """The registry file of process `pid`."""
    return (folder or _registry or registry_dir()) / f"tmu-{pid}.pid"


def _registered_pid(entry: Path) -> int | None:
    """The pid that `entry` registers, or None when tmu did not write it: another name, not a
    plain file (a folder, a link), or a bare-pid name with content (a user's file: tmu's are
    empty). The folder may be one the user chose (TMU_CORES_DIR) and holds other files."""
    match = PID_FILE.fullmatch(entry.name)
    if match is None:
        return None
    try:
        info = entry.lstat()
    except OSError:  # removed meanwhile
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size:
        return None
    return int(match.group(1) or match.group(2))


def running() -> int:
    """How many registered tmu processes are alive (at least this one). The file of a process
    that died without cleaning up is removed; nothing tmu did not write is touched."""
    if _registry is None:
        return 1
    alive = 0
    for entry in _registry.iterdir():
        pid = _registered_pid(entry)
        if pid is None:
            continue
        try:
            os.kill(pid, 0)
            alive += 1
        except ProcessLookupError:
            entry.unlink(missing_ok=True)
        except PermissionError:
            alive += 1  # alive, another user's
    return max(alive, 1)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def rebalance(force: bool = False) -> int | None:
    """Set torch's intra-op threads to this process's share of the cores (after `share_cores`);
    a cheap no-op otherwise or within CHECK_EVERY seconds of the last look. Returns the threads
    set, or None."""
    global _last
    if _registry is None:
        return None
    now = time.monotonic()
    if not force and now - _last < CHECK_EVERY:
        return None
    _last = now
    import torch

    want = max(1, cores() // running())
    if _cap is not None:
        want = min(want, _cap)
    if torch.get_num_threads() != want:
        torch.set_num_threads(want)
    return want
