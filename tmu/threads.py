"""Sharing the machine's cores between tmu processes (a classroom on one server, a sweep with
several workers, the CLI next to the dashboard).

Two torch processes with 2 intra-op threads each on 2 cores spin against each other: a digits run
took 16 s alone and 316 s when two ran at once. Two measures, both on by default for the command
line and the job workers:

* `OMP_WAIT_POLICY=PASSIVE` (set before torch loads OpenMP, in `tmu/__init__.py`): an idle
  OpenMP thread sleeps instead of spinning on a core another process needs;
* `share_cores()` registers this process in a folder of running tmu processes (one file per pid,
  removed at exit; files of dead pids are ignored), and `rebalance()` (called by the training
  loop at every epoch) sets torch's threads to the cores divided by the processes now running,
  at least one: a run started alone uses every core, and gives half back when a second starts.

A process whose threads the user set (`OMP_NUM_THREADS`) or that never called `share_cores()`
(the library used from a notebook, the tests) is left alone.
"""

from __future__ import annotations

import atexit
import os
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
    me = folder / str(os.getpid())
    me.touch()
    atexit.register(lambda: me.unlink(missing_ok=True))
    _registry, _cap = folder, max_threads
    rebalance(force=True)
    return True


def running() -> int:
    """How many registered tmu processes are alive (at least this one)."""
    if _registry is None:
        return 1
    alive = 0
    for entry in _registry.iterdir():
        try:
            os.kill(int(entry.name), 0)
            alive += 1
        except (ValueError, ProcessLookupError):
            entry.unlink(missing_ok=True)  # a process that died without cleaning up
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
