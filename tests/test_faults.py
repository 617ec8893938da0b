"""Faults: a job worker that never dies, no ghost jobs, a store that heals broken entries and
survives two writers and a full disk, run folders that hold one run and fail with RunFolderError
when edited or truncated."""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tmu import artifacts, jobs
from tmu.artifacts import Store, StoreWriteError, atomic_write, write_json
from tmu.config import RunConfig, from_dict
from tmu.jobs import (
    DONE,
    FAILED,
    JOB_KINDS,
    JobKind,
    JobQueue,
    JobSubmitError,
    ProcessRunner,
    ThreadRunner,
)
from tmu.models import build_model
from tmu.runs import RunFolderError, load_run, write_run


def cfg(seed=0):
    return RunConfig(dataset="digits", forget="subclass:3:0.3", seed=seed, methods=("tmu",))


def ok_task(c, store, out, progress):
    progress("original", 1.0)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text("{}")


def kind(name="run", task=ok_task):
    return JobKind(name, task, lambda c: ["original", "evaluate"], "report.json")


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ----------------------------------------------------------------------------- 1. the worker


def assert_still_serving(be, seed=99):
    assert be.wait(be.submit(cfg(seed)), timeout=10).state == DONE
    assert all(t.is_alive() for t in be._workers)


@pytest.mark.parametrize(
    "result, error",
    [
        (None, "TypeError: cannot unpack"),  # a runner returning nothing
        (("finished?", None), "unknown job state 'finished?'"),
    ],
)
def test_a_runner_returning_garbage_fails_the_job(tmp_path, result, error):
    class Odd(ThreadRunner):
        def run(self, k, job, *args):
            if job.config["seed"] == 0:
                return result
            return super().run(k, job, *args)

    be = JobQueue(tmp_path, runner=Odd(), kinds={"run": kind()})
    job = be.wait(be.submit(cfg()), timeout=10)
    assert job.state == FAILED and error in job.error
    assert_still_serving(be)


def test_a_kind_unregistered_while_queued_fails_its_job(tmp_path):
    gate = threading.Event()
    be = JobQueue(
        tmp_path,
        runner=ThreadRunner(),
        kinds={
            "run": kind(task=lambda c, s, o, p: (gate.wait(5), ok_task(c, s, o, p))),
            "gone": kind("gone"),
        },
    )
    first, doomed = be.submit(cfg(seed=1)), be.submit(cfg(seed=2), kind="gone")
    del be.kinds["gone"]
    gate.set()
    assert be.wait(first, timeout=10).state == DONE
    job = be.wait(doomed, timeout=10)
    assert job.state == FAILED and "unknown job kind 'gone'" in job.error
    assert_still_serving(be)


def test_a_fault_in_the_bookkeeping_does_not_kill_the_worker(tmp_path, monkeypatch):
    be = JobQueue(tmp_path, runner=ThreadRunner(), kinds={"run": kind()})
    be._queue.put("no-such-job")  # a KeyError in the job table, outside any runner
    broken = be.submit(cfg(seed=3))
    real = be._progress

    def progress(job_id):
        if job_id == broken:
            raise RuntimeError("progress table corrupt")
        return real(job_id)

    monkeypatch.setattr(be, "_progress", progress)
    job = be.wait(broken, timeout=10)
    assert job.state == FAILED and job.error == "RuntimeError: progress table corrupt"
    assert_still_serving(be)


def test_a_worker_fault_fails_the_job_with_the_reason(tmp_path, monkeypatch):
    be = JobQueue(tmp_path, runner=ThreadRunner(), kinds={"run": kind()})
    real = be._run_one
    failing = jobs.job_key("run", cfg(seed=4))

    def run_one(job_id):
        if job_id == failing:
            with be._lock:
                be._jobs[job_id].state = "running"
            raise MemoryError("no memory for the job table")
        return real(job_id)

    monkeypatch.setattr(be, "_run_one", run_one)
    job = be.wait(be.submit(cfg(seed=4)), timeout=10)
    assert job.state == FAILED and job.error == "MemoryError: no memory for the job table"
    assert_still_serving(be)


def test_process_runner_that_cannot_fork_fails_the_job(tmp_path, monkeypatch):
    def no_memory(*args, **kwargs):
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(jobs.subprocess, "Popen", no_memory)
    be = JobQueue(tmp_path, runner=ProcessRunner(), kinds={"run": JOB_KINDS["run"]})
    for seed in (0, 1):  # the second job is served too: the worker lives on
        job = be.wait(be.submit(cfg(seed)), timeout=10)
        assert job.state == FAILED
        assert job.error == (
            "cannot start the worker process: OSError: [Errno 12] Cannot allocate memory"
        )
    assert all(t.is_alive() for t in be._workers)


# ----------------------------------------------------------------------------- 2. no ghost jobs


def test_a_full_disk_at_submit_leaves_no_ghost_job(tmp_path, monkeypatch):
    be = JobQueue(tmp_path, runner=ThreadRunner(), kinds={"run": kind()})
    key = jobs.job_key("run", cfg())
    with monkeypatch.context() as m:
        m.setattr(artifacts.os, "fsync", enospc)
        with pytest.raises(
            JobSubmitError,
            match=r"cannot queue the run job: cannot write .*job\.json: No space left on device "
            r"\(the disk is full",
        ):
            be.submit(cfg())
    assert be.jobs() == []
    with pytest.raises(KeyError):
        be.status(key)
    assert not (tmp_path / "jobs" / key / "job.json").exists()
    assert [p.name for p in (tmp_path / "jobs" / key).iterdir()] == []  # no temp file
    assert be.wait(be.submit(cfg()), timeout=10).state == DONE  # queued for real, not a ghost


# ----------------------------------------------------------------------------- 3. the store


def tiny(seed=0):
    return build_model("cnn", 1, 10, seed=seed)


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize(
    "file, damage",
    [
        ("pt", lambda p: p.write_bytes(b"")),
        ("pt", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])),
        ("pt", lambda p: p.write_bytes(b"not a zip at all")),
        ("json", lambda p: p.write_text("")),
        ("json", lambda p: p.write_text('{"seconds": 1')),
    ],
    ids=["empty-pt", "truncated-pt", "garbage-pt", "empty-json", "truncated-json"],
)
def test_a_broken_model_is_not_served_but_retrained(tmp_path, caplog, file, damage):
    store, calls = Store(tmp_path), []

    def train():
        calls.append(1)
        return tiny()

    store.cached_model("k", "original", lambda: tiny(1), train)
    broken = tmp_path / "models" / f"k.{file}"
    damage(broken)
    with caplog.at_level(logging.WARNING, logger="tmu.artifacts"):
        assert not store.has_model("k")
        model, meta = store.cached_model("k", "original", lambda: tiny(1), train)
    assert calls == [1, 1] and meta["cached"] is False and same_weights(model, tiny())
    assert f"ignoring unreadable store file {broken}" in caplog.text
    assert store.has_model("k")  # healed
    loaded, meta = store.cached_model("k", "original", lambda: tiny(1), train)
    assert calls == [1, 1] and meta["cached"] is True and same_weights(loaded, tiny())


def test_load_model_on_a_broken_entry_names_it(tmp_path):
    store = Store(tmp_path)
    store.save_model("k", tiny(), {})
    (tmp_path / "models" / "k.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no readable stored model 'k'"):
        store.load_model("k", tiny())


def test_broken_arrays_and_results_are_recomputed(tmp_path, caplog):
    store = Store(tmp_path)
    store.save_arrays("a", x=np.arange(1000.0))
    store.save_json("r", {"v": 1})
    npz, res = tmp_path / "arrays" / "a.npz", tmp_path / "results" / "r.json"
    npz.write_bytes(npz.read_bytes()[:100])
    res.write_text("{")
    with caplog.at_level(logging.WARNING, logger="tmu.artifacts"):
        assert store.load_arrays("a") is None and store.load_json("r") is None
    assert str(npz) in caplog.text and str(res) in caplog.text
    assert not npz.exists() and not res.exists()


def test_atomic_write_fsyncs_the_file_and_the_folder(tmp_path, monkeypatch):
    synced, real = [], os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(artifacts.os, "fsync", fsync)
    atomic_write(tmp_path / "f.bin", b"data")
    assert len(synced) == 2
    assert Path(synced[0]).name.startswith(".f.bin.") and synced[1] == str(tmp_path)


def test_a_full_disk_mid_write_is_a_clear_error_and_leaves_no_partial_file(tmp_path, monkeypatch):
    store = Store(tmp_path)
    write_json(tmp_path / "f.json", {"v": 1})
    monkeypatch.setattr(artifacts.os, "fsync", enospc)  # the data is written, not yet on disk
    with pytest.raises(StoreWriteError) as info:
        write_json(tmp_path / "f.json", {"v": 2})
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert str(info.value) == (
        f"cannot write {tmp_path / 'f.json'}: No space left on device (the disk is full: free "
        "some space, or point TMU_HOME at another disk)"
    )
    assert json.loads((tmp_path / "f.json").read_text()) == {"v": 1}
    with pytest.raises(StoreWriteError, match=r"k\.pt: No space left on device"):
        store.save_model("k", tiny(), {})
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["f.json", "locks", "models"]
    assert os.listdir(tmp_path / "models") == []  # neither a .pt, a .json nor a temp file
    assert not store.has_model("k")


def _train_in_a_process(root, counter, out):
    """Child of test_two_processes_writing_one_key: cached_model of one shared key."""
    torch.set_num_threads(1)

    def train():
        with open(counter, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(1.0)  # long enough for the other process to ask for the same key meanwhile
        return tiny()

    model, meta = Store(root).cached_model("shared", "original", lambda: tiny(1), train)
    Path(out).write_text(json.dumps({"cached": meta["cached"], "ok": same_weights(model, tiny())}))


@pytest.mark.slow
def test_two_processes_writing_one_key(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    counter = tmp_path / "trained.txt"
    procs = [
        ctx.Process(
            target=_train_in_a_process, args=(tmp_path / "store", counter, tmp_path / f"{i}")
        )
        for i in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    results = [json.loads((tmp_path / f"{i}").read_text()) for i in range(2)]
    assert all(r["ok"] for r in results)  # both hold the valid model
    assert sorted(r["cached"] for r in results) == [False, True]  # one trained, one waited
    assert len(counter.read_text().splitlines()) == 1
    model, _ = Store(tmp_path / "store").load_model("shared", tiny(1))
    assert same_weights(model, tiny())


def test_the_store_lock_is_reentrant_and_exclusive(tmp_path):
    store, order = Store(tmp_path), []
    with store.lock("k"):
        with store.lock("k"):  # the same thread again: no deadlock
            pass

        def take():
            with store.lock("k"):
                order.append("t")

        other = threading.Thread(target=take)
        other.start()
        time.sleep(0.2)
        order.append("main")
    other.join(5)
    assert order == ["main", "t"]  # the other thread waited for the lock


# ----------------------------------------------------------------------------- 4. run folders


def fake_result(names, seed=0):
    """What write_run reads of a pipeline Result: a digits config, the splits, the models."""
    ids = np.arange(20)
    splits = {"train": ids[:10], "holdout": ids[10:15], "test": ids[15:], "forget": ids[:3]}
    splits["retain"] = ids[3:10]
    return SimpleNamespace(
        cfg=RunConfig(
            dataset="digits", model="cnn", methods=tuple(n for n in names if n != "original")
        ),
        data=SimpleNamespace(
            pool=SimpleNamespace(in_channels=1, num_classes=10),
            splits=SimpleNamespace(as_dict=lambda: splits),
        ),
        twin=None,
        decisions=None,
        unlearned={},
        models=lambda: {n: tiny(seed) for n in names},
    )


def report(methods):
    return {"models": {}, "dataset": {"sizes": {}}, "methods": list(methods)}


def probs(names):
    return {n: {"forget": np.full((3, 10), 0.1)} for n in names}


def write(out, names, seed=0):
    return write_run(fake_result(names, seed), report(names[1:]), probs(names), out)


@pytest.fixture
def run_dir(tmp_path):
    return write(tmp_path / "run", ["original", "finetune"])


def test_a_reused_out_folder_holds_exactly_one_run(run_dir):
    (run_dir / "job.json").write_text("{}")  # a job folder's own file, not the run's
    write(run_dir, ["original", "tmu"], seed=1)
    assert sorted(p.name for p in (run_dir / "models").iterdir()) == ["original.pt", "tmu.pt"]
    run = load_run(run_dir, load_data=False)
    assert set(run.models) == {"original", "tmu"} and run.report["methods"] == ["tmu"]
    assert set(run.predictions) == {"original/forget", "tmu/forget"}
    assert same_weights(run.models["tmu"], tiny(1)) and (run_dir / "job.json").is_file()


def test_a_rewrite_that_fails_leaves_no_mixed_run(run_dir, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("tmu.runs.np.savez_compressed", fail)
    with pytest.raises(OSError):
        write(run_dir, ["original", "tmu"], seed=1)
    with pytest.raises(
        RunFolderError, match=r"not a finished run folder: missing \['report.json'\]"
    ):
        load_run(run_dir, load_data=False)


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def edit_json(name, change):
    def edit(run):
        obj = json.loads((run / name).read_text())
        change(obj)
        (run / name).write_text(json.dumps(obj))

    return edit


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda r: (r / "report.json").write_text("{"), r"report\.json: not valid JSON"),
        (lambda r: truncate(r / "report.json"), r"report\.json: not valid JSON"),
        (
            lambda r: (r / "report.json").write_text("{}"),
            r"report\.json: missing key\(s\) \['models', 'dataset', 'methods'\]",
        ),
        (
            lambda r: (r / "report.json").write_text("[1]"),
            r"report\.json: expected a JSON object, got list",
        ),
        (lambda r: (r / "config.json").write_text(""), r"config\.json: not valid JSON"),
        (
            edit_json("config.json", lambda c: c.pop("architecture")),
            r"config\.json: missing key\(s\) \['architecture'\]",
        ),
        (
            edit_json("config.json", lambda c: c["architecture"].pop("num_classes")),
            r"config\.json: missing key\(s\) \['num_classes'\] under 'architecture'",
        ),
        (
            edit_json("config.json", lambda c: c.update(epochz=3)),
            r"config\.json: not a valid run config: unknown RunConfig key\(s\) \['epochz'\]",
        ),
        (
            edit_json("split.json", lambda s: s.pop("forget")),
            r"split\.json: missing key\(s\) \['forget'\]",
        ),
        (
            edit_json("split.json", lambda s: s.update(train=["a"])),
            r"split\.json: not lists of sample ids",
        ),
        (
            lambda r: truncate(r / "predictions.npz"),
            r"predictions\.npz: not a readable \.npz archive",
        ),
        (
            lambda r: truncate(r / "models" / "finetune.pt"),
            r"finetune\.pt: not a readable model state_dict",
        ),
        (
            lambda r: (r / "models" / "original.pt").write_bytes(b""),
            r"original\.pt: not a readable model state_dict",
        ),
        (
            lambda r: torch.save({"w": torch.zeros(2)}, r / "models" / "original.pt"),
            r"original\.pt: does not fit the architecture 'cnn' of config\.json",
        ),
    ],
)
def test_load_run_on_an_edited_or_truncated_folder(run_dir, damage, match):
    load_run(run_dir, load_data=False)  # intact, it loads
    damage(run_dir)
    with pytest.raises(RunFolderError, match=match):
        load_run(run_dir, load_data=False)


# ----------------------------------------------------------------------------- 6. cleaning


def age(path, days):
    old = time.time() - days * 86400
    for p in [path, *(path.rglob("*") if path.is_dir() else [])]:
        os.utime(p, (old, old))


def test_store_clean_removes_old_temp_files_only(tmp_path):
    store = Store(tmp_path)
    store.save_json("r", {"v": 1})
    old_tmp, new_tmp = tmp_path / "models" / ".k.pt.abc.tmp", tmp_path / "results" / ".r.json.x.tmp"
    old_tmp.parent.mkdir()
    old_tmp.write_bytes(b"half")
    new_tmp.write_bytes(b"in progress elsewhere")
    age(old_tmp, 2)
    age(tmp_path / "results" / "r.json", 30)  # old artifacts are the cache: kept
    assert store.clean(max_age_days=1) == [old_tmp]
    assert not old_tmp.exists() and new_tmp.exists() and store.load_json("r") == {"v": 1}
    (tmp_path / "jobs" / "j").mkdir(parents=True)
    age(tmp_path / "jobs" / "j", 5)
    assert store.clean(max_age_days=1) == []  # without keep_job, job folders are not touched


def test_a_starting_queue_removes_old_interrupted_job_folders(tmp_path):
    be = JobQueue(tmp_path, runner=ThreadRunner(), kinds={"run": kind()})
    done = be.submit(cfg(seed=1))
    be.wait(done, timeout=10)
    jobs_dir = tmp_path / "jobs"
    interrupted = jobs_dir / "interrupted"  # job.json, no report.json: a job that died
    write_json(interrupted / "job.json", {"kind": "run", "task": "x:y", "config": {}})
    other = jobs_dir / "other-kind"  # a kind this queue does not know: it may be finished
    write_json(other / "job.json", {"kind": "estimate", "task": "x:y", "config": {}})
    ghost, recent = jobs_dir / "ghost", jobs_dir / "recent"  # no job.json / a young one
    ghost.mkdir()
    write_json(recent / "job.json", {"kind": "run", "task": "x:y", "config": {}})
    for folder in (jobs_dir / done, interrupted, other, ghost):
        age(folder, 3)
    JobQueue(tmp_path, runner=ThreadRunner(), kinds={"run": kind()})
    assert sorted(p.name for p in jobs_dir.iterdir()) == sorted([done, "other-kind", "recent"])


# ---------------------------------------------------------------- CUDA out of memory (simulated)


def _oom():
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0)")


def oom_task(cfg, store, out, progress):
    progress("train", 0.1)
    raise _oom()


def test_out_of_memory_is_a_clear_message_suggesting_a_smaller_batch(tmp_path):
    from tmu.jobs import JobKind, JobQueue, error_text

    text = error_text(_oom())
    assert text.startswith("the GPU ran out of memory (CUDA out of memory. Tried to allocate")
    assert "--set train.batch_size=N" in text and "--device cpu" in text
    assert error_text(ValueError("x")) == "ValueError: x"
    kind = JobKind("oom", oom_task, lambda cfg: ["train"], "done.txt")
    q = JobQueue(tmp_path, kinds={"oom": kind})
    job = q.wait(q.submit(from_dict(RunConfig, {"dataset": "digits"}), "oom"), timeout=60)
    assert job.state == "failed" and "smaller batch" in job.error


def test_the_cli_says_what_to_do_when_the_gpu_runs_out_of_memory(monkeypatch, tmp_path, capsys):
    from tmu import cli, runs

    def boom(*args, **kwargs):
        raise _oom()

    monkeypatch.setattr(runs, "run_to_folder", boom)
    code = cli.main(["run", "--dataset", "digits", "--store", str(tmp_path), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: the GPU ran out of memory")
    assert "Traceback" not in err


# ---------------------------------------------------------------- a worker killed mid-training


def _worker_pids(out_dir: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name.isdigit() and b"tmu.jobs" in cmd and out_dir.encode() in cmd:
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
def test_a_worker_killed_mid_training_fails_its_job_and_a_rerun_resumes(tmp_path):
    import signal

    from tmu.jobs import JobQueue, ProcessRunner

    cfg = from_dict(
        RunConfig,
        {
            "dataset": "digits",
            "methods": ["finetune"],
            "gold_seeds": 2,
            "device": "cpu",
            "train": {"epochs": 30},
            "method_params": {"finetune": {"epochs": 1}},
        },
    )
    q = JobQueue(tmp_path, runner=ProcessRunner())
    job_id = q.submit(cfg)
    deadline = time.monotonic() + 300
    while (job := q.status(job_id)).stage in (None, "original"):  # wait: M_o is stored
        assert job.active and time.monotonic() < deadline, job
        time.sleep(0.05)
    for pid in _worker_pids(job.out_dir):
        os.kill(pid, signal.SIGKILL)
    job = q.wait(job_id, timeout=60)
    assert job.state == "failed" and "killed by signal 9 (SIGKILL" in job.error
    assert not (Path(job.out_dir) / "report.json").exists()  # nothing half-written is served
    rerun = q.wait(q.submit(cfg, force=True), timeout=600)  # the queue serves on
    assert rerun.state == "done", rerun.error
    report = json.loads((Path(rerun.out_dir) / "report.json").read_text())
    assert report["models"]["original"]["cached"] is True  # resumed from the stored M_o
