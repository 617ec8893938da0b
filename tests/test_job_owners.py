"""A classroom on one server: each visitor owns their jobs (identical ones are still computed
once and shared), cannot cancel another's, and the queue and each visitor's share are bounded."""

from __future__ import annotations

import threading
import time

import pytest

from tmu.config import RunConfig, from_dict
from tmu.jobs import CANCELLED, DONE, JobCancelled, JobKind, JobQueue, QueueFull

RELEASE = threading.Event()


def blocking_task(cfg, store, out, progress):
    """Runs until RELEASE is set (reporting, so that cancel can act)."""
    while not RELEASE.wait(0.01):
        progress("work", 0.5)
    (out / "done.txt").write_text("ok")


KIND = JobKind("block", blocking_task, lambda cfg: ["work"], "done.txt")


def cfg(seed: int) -> RunConfig:
    return from_dict(RunConfig, {"dataset": "digits", "seed": seed})


@pytest.fixture()
def queue(tmp_path):
    RELEASE.clear()
    q = JobQueue(tmp_path, kinds={"block": KIND}, max_queued=2, max_per_owner=2)
    yield q
    RELEASE.set()


def test_identical_jobs_are_shared_and_each_owner_withdraws_alone(queue):
    a = queue.submit(cfg(0), "block", owner="alice")
    assert queue.submit(cfg(0), "block", owner="bob") == a  # computed once
    assert queue.status(a).owners == ["alice", "bob"]
    assert not queue.cancel(a, owner="mallory")  # not theirs
    assert queue.cancel(a, owner="alice") and queue.status(a).active  # goes on for bob
    assert queue.status(a).owners == ["bob"]
    assert queue.cancel(a, owner="bob")
    assert queue.wait(a, timeout=30).state == CANCELLED


def test_a_visitors_share_and_the_queue_are_bounded_with_a_clear_message(queue):
    queue.submit(cfg(1), "block", owner="alice")  # runs
    queue.submit(cfg(2), "block", owner="alice")  # waits
    with pytest.raises(QueueFull, match=r"you already have 2 job\(s\) queued or running"):
        queue.submit(cfg(3), "block", owner="alice")
    queue.submit(cfg(3), "block", owner="bob")  # waits: 2 waiting now
    with pytest.raises(QueueFull, match=r"the job queue is full \(2 jobs waiting\)"):
        queue.submit(cfg(4), "block", owner="carol")
    queue.submit(cfg(1), "block", owner="carol")  # sharing a running job is always allowed
    RELEASE.set()
    for seed in (1, 2, 3):
        job_id = queue.submit(cfg(seed), "block")
        assert queue.wait(job_id, timeout=30).state == DONE


def test_the_dashboard_tab_owns_its_jobs_and_sees_its_runs_first(tmp_path):
    from dashboard import service
    from dashboard.service import Key

    RELEASE.clear()
    be = JobQueue(tmp_path, kinds={"block": KIND}, max_per_owner=1)
    alice, bob = {}, {}
    service.init_state(alice)
    service.init_state(bob)
    assert alice[Key.VISITOR] != bob[Key.VISITOR]
    job = be.submit(cfg(5), "block", owner=bob[Key.VISITOR])
    alice[Key.JOB] = job  # even knowing the id, alice cannot cancel bob's job
    assert not service.cancel_job(alice, be) and be.status(job).active
    bob[Key.JOB] = job
    assert service.cancel_job(bob, be)
    RELEASE.set()


def test_a_tab_sees_its_own_runs_first(tmp_path):
    import os
    import time

    from dashboard import service
    from dashboard.service import Key

    be = JobQueue(tmp_path)
    folders = []
    for i, name in enumerate(("mine", "theirs")):  # theirs is newer
        folder = tmp_path / "jobs" / name
        folder.mkdir(parents=True)
        (folder / "report.json").write_text("{}")
        os.utime(folder / "report.json", (time.time() + i, time.time() + i))
        folders.append(folder)
    state = {}
    service.init_state(state)
    assert service.finished_runs(be, state) == [folders[1], folders[0]]  # newest first
    state[Key.MY_RUNS] = [str(folders[0])]
    assert service.finished_runs(be, state) == [folders[0], folders[1]]
    assert service.current_run(state, be) == folders[0]


class StoppingSlowly:
    """A task whose first run stops only when STOP is set after its cancel (as a worker process
    takes a moment to die); every later run finishes at once. LOG records each start and end."""

    def __init__(self):
        self.log: list[str] = []
        self.stopping, self.stop = threading.Event(), threading.Event()

    def task(self, cfg, store, out, progress):
        run = sum(x.startswith("start") for x in self.log) + 1
        self.log.append(f"start {run}")
        try:
            while run == 1:
                progress("work", 0.5)
                time.sleep(0.005)
        except JobCancelled:
            self.stopping.set()
            assert self.stop.wait(10)
            self.log.append(f"end {run}")
            raise
        (out / "done.txt").write_text(str(run))
        self.log.append(f"end {run}")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_job_submitted_while_a_cancelled_one_stops_is_a_fresh_job_that_runs(tmp_path, workers):
    """Tab A cancels its job; tab B submits the same job while the cancelled one still runs (its
    process stopping): B gets a fresh job of its own that runs after the old one stopped, in the
    same folder, never both at once."""
    task = StoppingSlowly()
    kind = JobKind("slow", task.task, lambda c: ["work"], "done.txt")
    q = JobQueue(tmp_path, kinds={"slow": kind}, workers=workers)
    old = q.submit(cfg(7), "slow", owner="alice")
    while q.status(old).stage is None:
        time.sleep(0.005)
    assert q.cancel(old, owner="alice")
    assert task.stopping.wait(10) and q.status(old).state == "running"  # still stopping
    new = q.submit(cfg(7), "slow", owner="bob")
    assert new != old and q.status(new).owners == ["bob"]
    assert q.status(new).out_dir == q.status(old).out_dir == str(q.out_dir(old))
    assert q.submit(cfg(7), "slow", owner="carol") == new  # later ones share the fresh job
    time.sleep(0.05)  # a second worker would have started it by now: it waits for the old one
    assert q.status(new).state == "queued" and task.log == ["start 1"]
    task.stop.set()
    assert q.wait(old, timeout=10).state == CANCELLED
    done = q.wait(new, timeout=10)
    assert done.state == DONE and done.owners == ["bob", "carol"]
    assert task.log == ["start 1", "end 1", "start 2", "end 2"]
    assert (tmp_path / "jobs" / old / "done.txt").read_text() == "2"
    assert q.status(new).id == new and q.submit(cfg(7), "slow") in (old, new)  # done on disk
