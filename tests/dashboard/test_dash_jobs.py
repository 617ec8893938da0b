"""tmu.jobs: FIFO queue, de-duplication, cancel, progress and failures, with fake fast tasks, on
both runners; the dashboard's embedding job kind in a worker process."""

import json
import threading
import time
from pathlib import Path

import pytest

from tmu.config import RunConfig
from tmu.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    JOB_KINDS,
    JobKind,
    JobQueue,
    ProcessRunner,
    ThreadRunner,
    job_key,
)


def cfg(seed=0, **kw):
    return RunConfig(
        dataset="digits", forget="subclass:3:0.3", seed=seed, methods=("tmu", "finetune"), **kw
    )


def backend(root, task=None):
    """A thread-run queue whose only kind, "run", is `task` (no kind at all without one)."""
    kinds = (
        {}
        if task is None
        else {"run": JobKind("run", task, lambda c: ["original", "evaluate"], "report.json")}
    )
    return JobQueue(root, runner=ThreadRunner(), kinds=kinds)


def recording_task(log, gate=None):
    def task(c, store, out, progress):
        if gate is not None:
            gate.wait(5)
        for stage in ("original", "evaluate"):
            progress(stage, 0.5)
            progress(stage, 1.0)
        log.append(c.seed)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text("{}")

    return task


def test_queue_is_fifo_and_progress_reaches_one(tmp_path):
    log = []
    be = backend(tmp_path, recording_task(log))
    ids = [be.submit(cfg(seed=s)) for s in (3, 1, 2)]
    jobs = [be.wait(i, timeout=10) for i in ids]
    assert log == [3, 1, 2]
    assert all(j.state == DONE and j.fraction == 1.0 for j in jobs)
    assert jobs[0].stages[0] == "original" and jobs[0].stages[-1] == "evaluate"


def test_identical_jobs_are_deduplicated(tmp_path):
    log, gate = [], threading.Event()
    be = backend(tmp_path, recording_task(log, gate))
    a, b = be.submit(cfg()), be.submit(cfg())
    assert a == b == job_key("run", cfg())
    gate.set()
    be.wait(a, timeout=10)
    start = time.perf_counter()
    c = be.submit(cfg())  # finished on disk: returned at once, not re-run
    assert c == a and be.status(c).state == DONE and time.perf_counter() - start < 0.5
    assert log == [0]
    assert (
        backend(tmp_path, recording_task([])).status(a).state == DONE
    )  # a new backend reads it from disk


def test_cancel_running_and_queued(tmp_path):
    started = threading.Event()

    def slow(c, store, out, progress):
        started.set()
        while True:
            progress("original", 0.1)
            time.sleep(0.01)

    be = backend(tmp_path, slow)
    running, queued = be.submit(cfg(seed=0)), be.submit(cfg(seed=1))
    assert started.wait(5)
    assert be.status(running).stage == "original"
    assert be.cancel(queued) and be.status(queued).state == CANCELLED
    assert be.cancel(running)
    assert be.wait(running, timeout=5).state == CANCELLED
    assert not be.cancel(running)


def test_failure_is_reported_and_worker_survives(tmp_path):
    def boom(c, store, out, progress):
        raise ValueError("bad forget set 42")

    be = backend(tmp_path, boom)
    job = be.wait(be.submit(cfg()), timeout=5)
    assert job.state == FAILED and "bad forget set 42" in job.error
    assert be.wait(be.submit(cfg(seed=5)), timeout=5).state == FAILED


def test_unknown_kind_and_job(tmp_path):
    be = backend(tmp_path)
    with pytest.raises(ValueError, match="unknown job kind 'train'"):
        be.submit(cfg(), kind="train")
    with pytest.raises(KeyError, match="unknown job"):
        be.status("0123")


def test_process_runner_refuses_a_local_function(tmp_path):
    def local(c, store, out, progress):
        pass

    kinds = {"run": JobKind("run", local, lambda c: ["x"], "report.json")}
    be = JobQueue(tmp_path, runner=ProcessRunner(), kinds=kinds)
    job = be.wait(be.submit(cfg()), timeout=10)
    assert job.state == FAILED and "module-level function" in job.error


def test_runner_fault_fails_the_job_not_the_worker(tmp_path):
    class Broken(ThreadRunner):
        def run(self, *args):
            raise MemoryError("cannot fork")

    be = JobQueue(tmp_path, runner=Broken(), kinds={"run": JOB_KINDS["run"]})
    assert be.wait(be.submit(cfg()), timeout=5).error == "MemoryError: cannot fork"
    assert be.wait(be.submit(cfg(seed=1)), timeout=5).state == FAILED  # the worker still takes jobs


@pytest.mark.slow
def test_process_worker_runs_the_real_task_and_cancels(tmp_path):
    from dashboard.service import EMBEDDING

    be = JobQueue(tmp_path, runner=ProcessRunner(), kinds={"embedding": EMBEDDING})
    small = RunConfig(
        dataset="digits", methods=("tmu",), train=RunConfig().train.__class__(epochs=1)
    )
    job = be.wait(be.submit(small, kind="embedding"), timeout=120)
    assert job.state == DONE, job.error
    assert (tmp_path / "jobs" / job.id / "embedding.npz").is_file()
    assert (
        json.loads((tmp_path / "jobs" / job.id / "job.json").read_text())["task"]
        == "tmu.tasks:embedding_task"
    )
    slow = RunConfig(
        dataset="digits", methods=("tmu",), train=RunConfig().train.__class__(epochs=500)
    )
    jid = be.submit(slow, kind="embedding")
    deadline = time.monotonic() + 60
    while be.status(jid).stage is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert be.cancel(jid)
    assert be.wait(jid, timeout=60).state == CANCELLED


def test_a_kind_registered_after_the_backend_is_found(tmp_path, monkeypatch):
    be = JobQueue(tmp_path, runner=ThreadRunner())
    log = []
    monkeypatch.setitem(
        JOB_KINDS, "late", JobKind("late", recording_task(log), lambda c: ["x"], "report.json")
    )
    assert be.wait(be.submit(cfg(seed=9), kind="late"), timeout=10).state == DONE
    assert log == [9]


def test_a_failed_embedding_job_is_shown_not_resubmitted(tmp_path, monkeypatch):
    from dash_helpers import tiny_state

    from dashboard import service
    from tmu import artifacts

    calls = []

    def broken(c, store, out, progress):
        calls.append(1)
        raise RuntimeError("no original model for this dataset")

    kind = JobKind("embedding", broken, lambda c: ["original", "embed"], "embedding.npz")
    be = JobQueue(tmp_path, runner=ThreadRunner(), kinds={"embedding": kind})
    state = tiny_state()
    job, emb = service.embedding(state, be)
    be.wait(job.id, timeout=10)
    for _ in range(5):  # the page's polls
        job, emb = service.embedding(state, be)
        assert emb is None and job.state == FAILED
        assert job.error == "RuntimeError: no original model for this dataset"
    assert calls == [1]
    job, _ = service.embedding(state, be, retry=True)  # an explicit retry runs it again
    assert be.wait(job.id, timeout=10).state == FAILED and calls == [1, 1]

    # A job that cannot even be queued comes back failed with the reason, not as an exception.
    other = JobQueue(tmp_path / "full", runner=ThreadRunner(), kinds={"embedding": kind})

    def enospc(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifacts.os, "fsync", enospc)
    job, emb = service.embedding(state, other)
    assert emb is None and job.state == FAILED
    assert "cannot queue the embedding job" in job.error and "No space left" in job.error
    assert other.jobs() == []


# ------------------------------------------------ a tab's side jobs: owner, quota, cancel, once

GO = threading.Event()


def waiting_task(c, store, out, progress):
    """Runs until GO is set, reporting (so that cancel acts), then writes every side marker."""
    while not GO.wait(0.01):
        progress("original", 0.5)
    import numpy as np

    np.savez(out / "embedding.npz", ids=np.arange(3), xy=np.zeros((3, 2)), labels=np.zeros(3))
    np.savez(out / "hardness.npz", ids=np.arange(3), p_hard=np.zeros(3))
    (out / "estimate.json").write_text("{}")


def side_backend(root, **limits):
    """A thread-run queue whose embedding, estimate, hardness and block kinds all wait for GO."""
    GO.clear()
    kinds = {
        name: JobKind(name, waiting_task, lambda c: ["original"], marker)
        for name, marker in [
            ("embedding", "embedding.npz"),
            ("estimate", "estimate.json"),
            ("hardness", "hardness.npz"),
            ("block", "done.txt"),
        ]
    }
    return JobQueue(root, runner=ThreadRunner(), kinds=kinds, **limits)


def test_side_jobs_are_the_tabs_own_within_its_quota_and_refusals_are_messages(tmp_path):
    """Estimate and embedding jobs escaped the per-tab quota (a tab refused its 4th run still
    queued estimates) and a full queue raised QueueFull into the page."""
    from dash_helpers import tiny_state

    from dashboard import service

    be = side_backend(tmp_path, max_per_owner=3)
    tab, other = tiny_state(), tiny_state()
    for seed in range(3):  # the tab's quota: three runs
        be.submit(cfg(seed=seed), "block", owner=tab[service.Key.VISITOR])
    for ask in (
        lambda: service.estimate(tab, be, submit=True),
        lambda: service.hardness_map(tab, be, submit=True),
        lambda: service.embedding(tab, be),
    ):
        job, result = ask()
        assert result is None and job.state == FAILED
        assert job.error.startswith("not queued: you already have 3 job(s) queued or running")
    assert {j.kind for j in be.jobs()} == {"block"}  # nothing queued beyond the quota
    job, _ = service.estimate(other, be, submit=True)  # another tab has its own share
    assert job.state in ("queued", "running") and job.owners == [other[service.Key.VISITOR]]
    GO.set()

    full = side_backend(tmp_path / "full", max_queued=1)
    running = full.submit(cfg(seed=0), "block")
    while full.status(running).state != "running":
        time.sleep(0.005)
    full.submit(cfg(seed=1), "block")  # waits: the queue is full
    job, _ = service.embedding(tiny_state(), full)
    assert job.state == FAILED and "the job queue is full (1 jobs waiting)" in job.error
    GO.set()


def test_a_tab_cancels_its_side_jobs_and_no_other_tabs(tmp_path):
    from dash_helpers import tiny_state

    from dashboard import service
    from dashboard.service.runs import cancel_side_job, owns

    be = side_backend(tmp_path)
    tab, other = tiny_state(), tiny_state()
    job, _ = service.estimate(tab, be, submit=True)
    assert owns(tab, job) and not owns(other, job)
    assert not cancel_side_job(other, "estimate", be)  # nothing of theirs
    assert cancel_side_job(tab, "estimate", be)
    assert be.wait(job.id, timeout=10).state == CANCELLED
    assert service.estimate(tab, be)[0].state == CANCELLED
    # Shared with another tab: withdrawing leaves it running for them, shown cancelled here.
    job, _ = service.hardness_map(tab, be, submit=True)
    assert service.hardness_map(other, be, submit=True)[0].id == job.id
    assert cancel_side_job(tab, "hardness", be)
    assert service.hardness_map(tab, be)[0].state == CANCELLED
    assert service.hardness_map(other, be)[0].active  # goes on for the other tab
    GO.set()
    assert be.wait(job.id, timeout=10).state == DONE


def test_the_embedding_is_submitted_once_per_tab_and_settings(tmp_path, monkeypatch):
    """It was submitted on every render and every half-second poll."""
    from dash_helpers import tiny_state

    from dashboard import service
    from dashboard.service.runs import cancel_side_job

    be = side_backend(tmp_path)
    submits = []
    real = be.submit
    monkeypatch.setattr(be, "submit", lambda *a, **k: submits.append(a[0].seed) or real(*a, **k))
    tab = tiny_state()
    first = [service.embedding(tab, be)[0] for _ in range(5)]  # renders and polls
    assert submits == [0] and {j.id for j in first} == {first[0].id}
    assert first[0].owners == [tab[service.Key.VISITOR]]
    tab["w.seed"] = 1  # other settings: one new job; the tab gives up the old one
    job, _ = service.embedding(tab, be)
    assert submits == [0, 1] and job.id != first[0].id
    assert be.wait(first[0].id, timeout=10).state == CANCELLED  # nobody else wanted it
    assert cancel_side_job(tab, "embedding", be)
    for _ in range(3):
        assert service.embedding(tab, be)[0].state == CANCELLED
    assert submits == [0, 1]
    job, _ = service.embedding(tab, be, retry=True)  # the Retry button
    assert submits == [0, 1, 1] and job.state in ("queued", "running")
    GO.set()
    assert be.wait(job.id, timeout=10).state == DONE
    assert service.embedding(tab, be)[1] is not None and submits == [0, 1, 1]
    (Path(job.out_dir) / "embedding.npz").unlink()  # evicted since (a retry may be KEY.2)
    job, _ = service.embedding(tab, be)
    assert submits == [0, 1, 1, 1] and be.wait(job.id, timeout=10).state == DONE
