"""The store's disk budget (tmu.budget, JobQueue's eviction and pins) and the cleanup of crash
leftovers at start: the store stays within its budget, least recently used first, and never
loses a run a tab is showing or a job is using."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tmu import budget
from tmu.artifacts import Store, clean_imported
from tmu.budget import Pins, budget_from_env, evict, usage
from tmu.config import RunConfig, from_dict
from tmu.jobs import JobKind, JobQueue, ThreadRunner

RELEASE = threading.Event()


def blocking_task(cfg, store, out, progress):
    """A job that runs until the test releases it, then leaves a 3000-byte result."""
    progress("work", 0.0)
    RELEASE.wait(20)
    (out / "result.bin").write_bytes(b"r" * 3000)


KIND = JobKind("block", blocking_task, lambda cfg: ["work"], "result.bin")


def cfg(seed: int) -> RunConfig:
    return from_dict(RunConfig, {"dataset": "digits", "seed": seed})


def age(path, minutes):
    """Set `path`'s last use `minutes` ago."""
    then = time.time() - 60 * minutes
    os.utime(path, (then, then))


@pytest.fixture()
def queue(tmp_path):
    RELEASE.clear()
    be = JobQueue(tmp_path, runner=ThreadRunner(), kinds={"block": KIND})
    yield be
    RELEASE.set()


def fill(be: JobQueue) -> None:
    """Six 2 kB results r0 (least recently used) ... r5, and a finished run folder older than
    all of them."""
    for i in range(6):
        be.store.save_json(f"r{i}", {"pad": "x" * 2000})
        age(be.store.root / "results" / f"r{i}.json", 100 - i)
    run = be.root / "jobs" / "shown"
    run.mkdir(parents=True)
    (run / "report.json").write_bytes(b"{}" + b" " * 4000)
    age(run, 500)


def test_the_store_stays_within_its_budget_least_recently_used_first(queue):
    be = queue
    job = be.submit(cfg(1), "block", owner="bob")  # runs until released
    while be.status(job).state != "running":
        time.sleep(0.01)
    fill(be)
    be.pin("alice", [be.root / "jobs" / "shown"])  # alice's tab shows this run...
    age(be.root / "jobs" / "shown", 500)  # ...though nobody touched it for long
    age(be.out_dir(job), 1000)  # the running job's folder is the oldest of all
    assert be.store.load_json("r0") == {"pad": "x" * 2000}  # a read is a use: r0 is now newest
    be.max_store_bytes = usage(be.root) - 5000  # three results must go
    evicted = be.enforce_budget()
    assert [e.name for e in evicted] == ["results/r1.json", "results/r2.json", "results/r3.json"]
    assert usage(be.root) <= be.max_store_bytes
    assert (be.root / "jobs" / "shown" / "report.json").is_file()  # pinned
    assert (be.out_dir(job) / "job.json").is_file()  # in use by a running job
    assert sorted(p.name for p in (be.root / "results").iterdir()) == [
        "r0.json",
        "r4.json",
        "r5.json",
    ]
    assert not list(be.root.glob(".evicted.*"))


def test_a_finished_job_triggers_eviction_and_its_run_survives(queue):
    be = queue
    fill(be)
    be.max_store_bytes = usage(be.root) + 1000  # within budget now; the job's 3 kB is not
    job = be.submit(cfg(2), "block", owner="bob")
    RELEASE.set()
    assert be.wait(job, timeout=20).state == "done"
    deadline = time.monotonic() + 10
    while usage(be.root) > be.max_store_bytes and time.monotonic() < deadline:
        time.sleep(0.02)  # the worker evicts right after it marks the job done
    assert usage(be.root) <= be.max_store_bytes
    assert (be.out_dir(job) / "result.bin").is_file()  # pinned for bob, whose tab shows it next
    assert (be.root / "jobs" / "shown").exists() is False  # the oldest entry went first
    assert (be.root / "results" / "r5.json").is_file()


def test_a_queue_evicts_at_start(tmp_path):
    store = Store(tmp_path)
    for i in range(4):
        store.save_json(f"r{i}", {"pad": "x" * 2000})
        age(tmp_path / "results" / f"r{i}.json", 10 - i)
    budget_bytes = usage(tmp_path) - 1000
    JobQueue(tmp_path, runner=ThreadRunner(), kinds={"block": KIND}, max_store_bytes=budget_bytes)
    assert usage(tmp_path) <= budget_bytes
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "r1.json",
        "r2.json",
        "r3.json",
    ]


def test_a_key_being_written_is_skipped_and_a_model_goes_whole(tmp_path):
    store = Store(tmp_path)
    for key in ("old", "new"):
        (tmp_path / "models").mkdir(exist_ok=True)
        (tmp_path / "models" / f"{key}.pt").write_bytes(b"w" * 3000)
        (tmp_path / "models" / f"{key}.json").write_text("{}")
    age(tmp_path / "models" / "old.pt", 60)
    age(tmp_path / "models" / "old.json", 60)
    holding, done = threading.Event(), threading.Event()

    def writer():  # another thread (or process) is writing "old"
        with store.lock("old"):
            holding.set()
            done.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    holding.wait(10)
    try:
        evicted = evict(store, budget=usage(tmp_path) - 100)
    finally:
        done.set()
        thread.join()
    assert [e.name for e in evicted] == ["models/new.pt"]  # "old" was locked: skipped
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["old.json", "old.pt"]


def test_pins_are_replaced_per_owner_and_expire(tmp_path):
    now = [0.0]
    pins = Pins(ttl=60, clock=lambda: now[0])
    a, b, c = (tmp_path / n for n in "abc")
    pins.pin("alice", [a, None])
    pins.pin("bob", [b])
    pins.pin("alice", [c])  # alice shows another run
    assert pins.paths() == {b.resolve(), c.resolve()}
    now[0] = 30
    pins.pin("bob", [b])  # a refresh
    now[0] = 61
    assert pins.paths() == {b.resolve()}  # alice's tab was closed
    now[0] = 91
    assert pins.paths() == set()


@pytest.mark.parametrize("raw", ["abc", "-1", "0", "nan", "inf", "1e400", "5GB"])
def test_a_bad_budget_is_refused_by_name(raw):
    with pytest.raises(ValueError, match=f"TMU_MAX_STORE_GB={raw!r} is not a positive number"):
        budget_from_env({"TMU_MAX_STORE_GB": raw})


def test_the_budget_from_the_environment():
    assert budget_from_env({}) is None and budget_from_env({"TMU_MAX_STORE_GB": " "}) is None
    assert budget_from_env({"TMU_MAX_STORE_GB": "0.5"}) == 500_000_000
    assert budget_from_env({"TMU_MAX_STORE_GB": "20"}) == 20 * 10**9


# ----------------------------------------------------------------------------- leftovers


def test_old_crash_leftovers_go_at_start_young_ones_and_the_rest_stay(tmp_path):
    store = Store(tmp_path)
    weights = tmp_path / "uploads" / "weights"
    weights.mkdir(parents=True)
    old_part, new_part = weights / "tmpab12cd34.part", weights / "tmpzz99yy88.part"
    kept = weights / "0123456789abcdef.pt"
    trash = tmp_path / f"{budget.EVICTED}job1.abcd1234"
    (trash / "models").mkdir(parents=True)
    for path in (old_part, new_part, kept, trash / "models" / "x.pt"):
        path.write_bytes(b"data")
    for path in (old_part, kept, trash / "models" / "x.pt", trash / "models", trash):
        age(path, 3 * 1440)
    assert sorted(store.clean(max_age_days=1)) == sorted([old_part, trash])
    assert new_part.is_file() and kept.is_file()


def test_old_import_and_upload_folders_go_datasets_and_foreign_files_stay(tmp_path):
    imported = tmp_path / "imported"
    old_import, old_upload = imported / ".cats.k2j4_x9a", imported / ".upload.abcd1234"
    young = imported / ".dogs.q1w2e3r4"
    dataset, foreign_dir, foreign_file = (
        imported / "cats",
        imported / ".git",
        imported / ".DS_Store",
    )
    for folder in (old_import, old_upload, young, dataset / "a", foreign_dir):
        folder.mkdir(parents=True)
        (folder / "f.png").write_bytes(b"png")
    foreign_file.write_bytes(b"finder")
    for path in imported.rglob("*"):
        if young not in (path, path.parent):
            age(path, 2 * 1440)
    assert sorted(clean_imported(imported, max_age_days=1)) == sorted([old_import, old_upload])
    assert young.is_dir() and (dataset / "a" / "f.png").is_file()
    assert foreign_dir.is_dir() and foreign_file.is_file()


def test_the_dashboards_backend_cleans_the_data_root_and_reads_the_budget(tmp_path, monkeypatch):
    from dashboard.service import runs

    leftover = tmp_path / "data" / "imported" / ".upload.abcd1234"
    leftover.mkdir(parents=True)
    age(leftover, 2 * 1440)
    monkeypatch.setenv("TMU_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TMU_MAX_STORE_GB", "0.25")
    monkeypatch.setattr(runs, "_backends", {})
    monkeypatch.setattr(runs, "make_runner", ThreadRunner)
    be = runs.backend(tmp_path / "store")
    assert be.max_store_bytes == 250_000_000 and not leftover.exists()
    monkeypatch.setattr(runs, "_backends", {})
    monkeypatch.setenv("TMU_MAX_STORE_GB", "lots")
    with pytest.raises(runs.BackendUnavailable, match="TMU_MAX_STORE_GB='lots'"):
        runs.backend(tmp_path / "store")


def test_the_run_a_tab_shows_is_pinned_for_that_tab(tmp_path):
    from dashboard import service
    from dashboard.service import Key

    be = JobQueue(tmp_path, runner=ThreadRunner())
    runs = []
    for name in ("a", "b"):
        folder = be.root / "jobs" / name
        folder.mkdir(parents=True)
        (folder / "report.json").write_text("{}")
        runs.append(folder)
    state = {}
    service.init_state(state)
    state[Key.RUN_PATH] = str(runs[0])
    assert service.current_run(state, be) == runs[0]
    assert be.pins.paths() == {runs[0]}
    state[Key.RUN_PATH] = str(runs[1])  # the tab shows another run: the first is free again
    assert service.current_run(state, be) == runs[1]
    assert be.pins.paths() == {runs[1]}


def test_a_run_evicted_while_the_runs_are_listed_is_left_out(tmp_path, monkeypatch):
    """The pages list finished runs on every rerun while the budget may evict one: a folder
    that vanishes between the listing and its stat is left out, never an error in the page."""
    from pathlib import Path

    from tmu.jobs import JobQueue

    queue = JobQueue(tmp_path)
    jobs = tmp_path.resolve() / "jobs"
    (jobs / "b").mkdir(parents=True)
    (jobs / "b" / "report.json").write_text("{}")
    listed = [jobs / "a" / "report.json", jobs / "b" / "report.json"]  # a: evicted just now
    real_glob = Path.glob
    monkeypatch.setattr(
        Path, "glob", lambda self, pattern: listed if self == jobs else real_glob(self, pattern)
    )
    assert queue.finished() == [jobs / "b"]


def test_pinning_uploaded_weights_keeps_their_job_key(tmp_path):
    """A tab's result page pins the weights it uses on every rerun: touching the file changed its
    stamp, so every later run of those weights got a new job key (no de-duplication, side jobs
    submitted again). A pinned run folder still records its use."""
    import os

    from tmu.budget import Pins
    from tmu.config import RunConfig, from_dict
    from tmu.jobs import job_key

    weights = tmp_path / "uploads" / "weights" / "abc.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"x")
    run = tmp_path / "jobs" / "r1"
    run.mkdir(parents=True)
    for path in (weights, run):
        os.utime(path, ns=(10**18, 10**18))
    cfg = from_dict(RunConfig, {"dataset": "digits", "original_weights": str(weights)})
    before = job_key("run", cfg)
    Pins().pin("tab", [run, weights])
    assert job_key("run", cfg) == before
    assert run.stat().st_mtime_ns > 10**18  # the folder's use is recorded
