"""The Ray backend against a real local Ray cluster (127.0.0.1 only, token authentication on, one
fake GPU): a run and a sweep through Ray give the local backend's metrics, progress arrives,
cancel stops a job and leaves the worker usable, a shared store is written in place, and a wrong
address or token is a clear error within seconds."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray  # a requirement: a missing install must fail, not skip
import torch

from ray_test_env import RAY_ENV, RAY_TOKEN
from tmu import cli
from tmu.config import RunConfig, from_dict
from tmu.jobs import CANCELLED, DONE, RUNNING, JobQueue, ThreadRunner

from tmu import ray_backend

slow = pytest.mark.slow  # every test that starts or reaches a real Ray

ROOT = Path(__file__).resolve().parents[1]
RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
TINY = {
    "dataset": "digits",
    "methods": ["tmu", "finetune"],
    "gold_seeds": 1,
    "device": "cpu",
    "train": {"epochs": 2, "batch_size": 32},
    "twin": {"min_size": 50, "max_epochs": 2, "curriculum_epochs": 1},
    "predictor": {"epochs": 20, "folds": 2},
    "method_params": {"tmu": {"epochs": 2}, "finetune": {"epochs": 2}},
}
SETS = [
    f"{k}={json.dumps(v)}"
    for k, v in {
        "train.epochs": 2,
        "train.batch_size": 32,
        "twin.min_size": 50,
        "twin.max_epochs": 2,
        "twin.curriculum_epochs": 1,
        "predictor.epochs": 20,
        "predictor.folds": 2,
        "method_params.tmu.epochs": 2,
        "method_params.finetune.epochs": 2,
    }.items()
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env(token: str) -> dict[str, str]:
    """conftest's Ray environment (loopback only, token auth on) with `token`."""
    return {**RAY_ENV, "RAY_AUTH_TOKEN": token, "OMP_WAIT_POLICY": "PASSIVE"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Ray head on 127.0.0.1 with 2 CPUs and one fake GPU; the worker store is its TMU_HOME.
    Yields (GCS address, Ray Client address, worker store)."""
    base = tmp_path_factory.mktemp("ray")
    token, port, client_port = RAY_TOKEN, free_port(), free_port()
    env = {**os.environ, **ray_env(token), "TMU_HOME": str(base / "worker-store")}
    start = [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port)]
    start += ["--num-cpus", "2", "--num-gpus", "1", "--include-dashboard", "false"]
    start += ["--disable-usage-stats", "--ray-client-server-port", str(client_port)]
    proc = subprocess.run(start, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    address = f"127.0.0.1:{port}"
    try:
        yield address, f"ray://127.0.0.1:{client_port}", base / "worker-store"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        ray_backend._connected = None
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def runner(cluster):
    return ray_backend.RayRunner(cluster[0], poll=0.05)


def metrics(report: dict) -> dict:
    """Every accuracy and agreement figure of a report (no timings)."""
    out = {}
    for name, e in report["models"].items():
        for k, entry in enumerate(e if isinstance(e, list) else [e]):
            out[f"{name}{k}"] = (entry["acc"], entry.get("vs_gold"))
    return out


def follow(q: JobQueue, job_id: str, timeout: float = 300):
    stages, deadline = [], time.monotonic() + timeout
    while (job := q.status(job_id)).active:
        assert time.monotonic() < deadline, f"job still {job.state}"
        if job.stage and (not stages or stages[-1] != job.stage):
            stages.append(job.stage)
        time.sleep(0.02)
    return job, stages


@slow
def test_run_through_ray_matches_local(runner, cluster, tmp_path, monkeypatch):
    """Without a shared filesystem: the worker cannot see the client's store (here: a store id
    it does not find), so the job runs in the worker's store and its folder travels back."""
    monkeypatch.setattr(ray_backend, "store_id", lambda root: "a store the worker cannot see")
    cfg = from_dict(RunConfig, {**TINY, "seed": 3})
    q = JobQueue(tmp_path / "client", runner=runner)
    job, stages = follow(q, q.submit(cfg))
    assert job.state == DONE, job.error
    # progress arrived stage by stage, in the plan's order
    assert stages[0] == job.stages[0] and "evaluate" in stages
    assert [s for s in job.stages if s in stages] == stages
    remote = json.loads((Path(job.out_dir) / "report.json").read_text())
    # the folder came back through Ray: complete, in the client's store, models included
    assert Path(job.out_dir).parent == tmp_path / "client" / "jobs"
    assert (Path(job.out_dir) / "models" / "tmu.pt").is_file()
    # the worker cached the costly models in its own store, where the work ran
    assert any((cluster[2] / "models").glob("*.pt"))
    assert not (tmp_path / "client" / "models").exists()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the worker (one CPU per actor)
    try:
        local = JobQueue(tmp_path / "local", runner=ThreadRunner())
        ljob = local.wait(local.submit(cfg), timeout=300)
    finally:
        torch.set_num_threads(threads)
    assert ljob.state == DONE, ljob.error
    assert metrics(remote) == metrics(json.loads((Path(ljob.out_dir) / "report.json").read_text()))

    # the same job again is de-duplicated by the client without touching the cluster
    again = q.submit(cfg)
    assert again == job.id and q.status(again).state == DONE


@slow
def test_describe_shows_the_cluster_and_its_worker(runner):
    desc = JobQueue(runner=runner).describe()
    assert desc["backend"] == "ray" and desc["gpus"] == 1.0 and desc["nodes"] == 1
    assert desc["parallel_jobs"] == 1 and len(desc["workers"]) == 1
    worker = desc["workers"][0]
    assert worker["version"] == runner.version and worker["pid"] != os.getpid()


@slow
def test_cancel_stops_a_running_job_and_the_worker_stays_usable(runner, tmp_path):
    long = from_dict(RunConfig, {**TINY, "seed": 4, "train": {"epochs": 400, "batch_size": 8}})
    q = JobQueue(tmp_path / "client", runner=runner)
    job_id = q.submit(long)
    deadline = time.monotonic() + 120
    while q.status(job_id).stage is None:
        assert time.monotonic() < deadline, "the job never reported progress"
        time.sleep(0.05)
    assert q.status(job_id).state == RUNNING
    asked = time.monotonic()
    assert q.cancel(job_id)
    job = q.wait(job_id, timeout=30)
    assert job.state == CANCELLED and time.monotonic() - asked < 10
    assert not (Path(job.out_dir) / "report.json").exists()
    # the same worker takes the next job
    job2, _ = follow(q, q.submit(from_dict(RunConfig, {**TINY, "seed": 5})))
    assert job2.state == DONE, job2.error


@slow
def test_shared_store_is_written_in_place(runner, cluster, tmp_path, monkeypatch):
    """A client whose store the worker sees (one machine, or TMU_HOME on shared storage) gets the
    folder and the cached models written there by the worker: nothing travels back."""

    def no_copy(*args, **kwargs):
        raise AssertionError("a shared store must not be copied")

    monkeypatch.setattr(ray_backend, "unpack_folder", no_copy)
    q = JobQueue(tmp_path / "shared", runner=runner)
    job, _ = follow(q, q.submit(from_dict(RunConfig, {**TINY, "seed": 6})))
    assert job.state == DONE, job.error
    assert Path(job.out_dir).parent == tmp_path / "shared" / "jobs"
    assert (Path(job.out_dir) / "report.json").is_file()
    assert any((tmp_path / "shared" / "models").glob("*.pt"))


@slow
def test_sweep_through_ray_matches_local(runner, cluster, tmp_path, capsys):
    grid = ["--dataset", "digits", "--forget", "random:0.1,class:2", "--seeds", "0"]
    grid += ["--methods", "tmu,finetune", "--gold-seeds", "1", "--device", "cpu", "-q"]
    grid += [a for s in SETS for a in ("--set", s)]
    ray_args = ["--backend", "ray", "--ray-address", cluster[0], "--store", str(tmp_path / "s1")]
    assert cli.main(["sweep", *grid, *ray_args, "--out", str(tmp_path / "ray")]) == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = ["--store", str(tmp_path / "s2"), "--out", str(tmp_path / "local")]
        assert cli.main(["sweep", *grid, *local]) == 0
    finally:
        torch.set_num_threads(threads)
    ray_rows = (tmp_path / "ray" / "sweep.csv").read_text().splitlines()
    local_rows = (tmp_path / "local" / "sweep.csv").read_text().splitlines()
    assert len(ray_rows) == 1 + 2 * 4  # header, 2 runs x (original, gold_0, tmu, finetune)
    # identical but for the seconds and retrain-ratio columns
    strip = lambda line: line.split(",")[:11]  # noqa: E731
    assert [strip(r) for r in ray_rows] == [strip(r) for r in local_rows]
    assert (tmp_path / "ray" / "runs" / "digits-class-2-s0" / "report.json").is_file()


def run_cli(args: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tmu", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@slow
def test_unreachable_address_is_a_clear_error_within_seconds(tmp_path):
    start = time.monotonic()
    proc = run_cli(
        ["run", "--backend", "ray", "--ray-address", f"127.0.0.1:{free_port()}", "-q"],
        {"TMU_HOME": str(tmp_path)},
    )
    assert proc.returncode == 2, proc.stderr
    assert "cannot reach the Ray cluster at 127.0.0.1:" in proc.stderr
    assert "Traceback" not in proc.stderr and time.monotonic() - start < 20


@slow
def test_cli_run_through_the_ray_client_address(cluster, tmp_path):
    """From a machine outside the cluster: `ray://HOST:PORT` (Ray Client), in a fresh process."""
    out = tmp_path / "out"
    args = ["run", "--backend", "ray", "--ray-address", cluster[1], "--dataset", "digits"]
    args += ["--methods", "tmu,finetune", "--gold-seeds", "1", "--device", "cpu", "--seed", "7"]
    args += [a for s in SETS for a in ("--set", s)] + ["--out", str(out), "-q"]
    proc = run_cli(args, {"TMU_HOME": str(tmp_path / "store")}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["methods"] == ["tmu", "finetune"] and "tmu" in proc.stdout
    assert 0.0 <= report["models"]["tmu"]["acc"]["forget"] <= 1.0


@slow
def test_wrong_token_is_a_clear_error(cluster, tmp_path):
    env = {**ray_env("0" * 32), "TMU_HOME": str(tmp_path)}
    start = time.monotonic()
    proc = run_cli(["run", "--backend", "ray", "--ray-address", cluster[0], "-q"], env)
    assert proc.returncode == 2, proc.stderr
    assert f"the Ray cluster at {cluster[0]} refused our authentication token" in proc.stderr
    assert "Traceback" not in proc.stderr and time.monotonic() - start < 20


def test_malformed_address_names_the_value():
    with pytest.raises(ray_backend.RayBackendError, match="'nohost' is malformed"):
        ray_backend.parse_address("nohost")


def test_pack_and_unpack_write_the_marker_last(tmp_path):
    src = tmp_path / "src"
    (src / "models").mkdir(parents=True)
    (src / "models" / "a.pt").write_bytes(b"weights")
    (src / "report.json").write_text("{}")
    dest = tmp_path / "dest"
    ray_backend.unpack_folder(ray_backend.pack_folder(src), dest, "report.json")
    assert (dest / "models" / "a.pt").read_bytes() == b"weights"
    assert (dest / "report.json").stat().st_mtime_ns >= (
        dest / "models" / "a.pt"
    ).stat().st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "src"]  # no temp folder left


@slow
def test_run_page_shows_the_cluster_and_runs_a_job_on_it(cluster, tmp_path, monkeypatch):
    """The dashboard with TMU_BACKEND=ray: the Run page names the cluster and its GPU, and a
    tiny job submitted there runs on the Ray worker."""
    from streamlit.testing.v1 import AppTest

    from dashboard import service

    monkeypatch.setenv("TMU_HOME", str(tmp_path))
    monkeypatch.setenv("TMU_BACKEND", "ray")
    monkeypatch.setenv("TMU_RAY_ADDRESS", cluster[0])
    monkeypatch.setenv("TMU_DASHBOARD_DATASET", "digits")
    monkeypatch.setenv("TMU_DASHBOARD_PROFILE", "quick")
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/run.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    assert f"Ray cluster at `{cluster[0]}`" in text and "GPUs 1 of 1 allocated" in text
    assert service.backend().describe()["backend"] == "ray"


# ---------------------------------------------------------------- two clients, other nodes


@slow
def test_two_clients_share_the_workers_never_a_job_or_a_gpu(runner, cluster, tmp_path, monkeypatch):
    """Two clients (two dashboards, or a dashboard and a sweep) on one cluster: each has its own
    free list of the same named worker. An identical job from both (the same job id) runs twice,
    one after the other on the one worker, and both end done with the same results."""
    other = ray_backend.RayRunner(cluster[0], poll=0.05)  # the second client
    assert other.client != runner.client and other.version == runner.version
    cfg = from_dict(RunConfig, {**TINY, "seed": 8, "train": {"epochs": 40, "batch_size": 32}})
    qa = JobQueue(tmp_path / "a", runner=runner)
    qb = JobQueue(tmp_path / "b", runner=other)
    ja = qa.submit(cfg)
    deadline = time.monotonic() + 120
    while qa.status(ja).stage is None:
        assert qa.status(ja).active, qa.status(ja).error
        assert time.monotonic() < deadline, "the first job never reported progress"
        time.sleep(0.02)
    jb = qb.submit(cfg)
    # The one worker is busy: the second client's job waits. Checked while the first is well
    # short of its end: after the worker finishes it, the first client's status lags one poll
    # and a fetch behind, and the second job may rightly start in that gap.
    while (first := qa.status(ja)).active and first.fraction < 0.8:
        assert qb.status(jb).stage is None, "two jobs ran on one worker (one GPU) at once"
        time.sleep(0.02)
    a, b = qa.wait(ja, timeout=300), qb.wait(jb, timeout=300)
    assert (a.state, b.state) == (DONE, DONE), (a.error, b.error)
    reports = [json.loads((Path(j.out_dir) / "report.json").read_text()) for j in (a, b)]
    assert metrics(reports[0]) == metrics(reports[1])


@slow
def test_a_worker_killed_meanwhile_is_replaced_for_the_next_job(runner, tmp_path):
    """A client of another code version retires idle workers (`tmu cluster --stop-workers`
    kills them all): this client's next job gets a new worker instead of failing."""
    ray.kill(runner.actors[0])
    q = JobQueue(tmp_path / "client", runner=runner)
    job = q.wait(q.submit(from_dict(RunConfig, {**TINY, "seed": 10})), timeout=300)
    assert job.state == DONE, job.error
    assert ray.get(runner.actors[0].info.remote(), timeout=30)["jobs_done"] == 1


def write_shapes(folder: Path, per_class: int = 100) -> None:
    """A tiny image folder: two classes of 8x8 grey images, dark and light noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, (low, high) in {"dark": (0, 120), "light": (135, 256)}.items():
        (folder / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(low, high, size=(8, 8), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / label / f"{i:03d}.png")


@slow
def test_uploaded_dataset_and_weights_travel_to_a_worker_that_cannot_see_them(
    runner, cluster, tmp_path, monkeypatch
):
    """A dataset imported on the client (`imagefolder:NAME` under the client's data root) and an
    uploaded weights file: a worker on another node has neither (here: another data root, and a
    stamp the worker never matches). Their bytes go through Ray, and the run folder names the
    dataset and the weights as the client knows them."""
    from tmu.artifacts import save_state_dict
    from tmu.models import build_model

    data_root = tmp_path / "client-data"
    write_shapes(data_root / "imported" / "shapes")
    weights = tmp_path / "client" / "uploads" / "weights" / "w.pt"
    weights.parent.mkdir(parents=True)
    save_state_dict(weights, build_model("cnn", 1, 2, seed=0))
    monkeypatch.setenv("TMU_DATA", str(data_root))
    monkeypatch.setattr(ray_backend, "input_stamp", lambda kind, path: "elsewhere", raising=False)
    cfg = {**TINY, "dataset": "imagefolder:shapes", "seed": 9, "original_weights": str(weights)}
    cfg["twin"] = {"min_size": 20, "max_epochs": 2, "curriculum_epochs": 1}
    q = JobQueue(tmp_path / "client", runner=runner)
    job, _ = follow(q, q.submit(from_dict(RunConfig, cfg)))
    assert job.state == DONE, job.error
    out = Path(job.out_dir)
    report = json.loads((out / "report.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert report["dataset"]["name"] == config["dataset"] == "imagefolder:shapes"
    assert config["original_weights"] == str(weights)
    assert report["dataset"]["classes"] == ["dark", "light"]
    worker_store = str(cluster[2])
    for f in out.glob("*.json"):
        assert worker_store not in f.read_text(), f"{f.name} names the worker's store"
    # the worker keeps what it was sent, by content
    inputs = cluster[2] / "ray-inputs"
    assert len([p for p in inputs.iterdir() if p.is_dir()]) == 1
    assert len(list(inputs.glob("*.pt"))) == 1


# ---------------------------------------------------------------- the worker alone (no Ray)

GATE = threading.Event()
TASK = f"{__name__}:gated_task"


def gated_task(cfg, store, out, progress) -> None:
    """A job task for the tests without Ray: waits for GATE, then writes report.json with its
    config's dataset and weights and what it read through them (and whether from the worker's
    own store)."""
    from tmu.data import imagefolder_path

    progress("wait", 0.0)
    assert GATE.wait(30)
    record = {"dataset": cfg.dataset, "original_weights": cfg.original_weights}
    if cfg.dataset.startswith("imagefolder:"):
        folder = imagefolder_path(cfg.dataset, cfg.data_root)
        record["files"] = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*.png"))]
        record["folder_in_worker_store"] = folder.is_relative_to(store.root)
    if cfg.original_weights:
        record["weights"] = Path(cfg.original_weights).read_text()
    (out / "report.json").write_text(json.dumps(record))


def finish(worker: ray_backend.Worker, handle: str) -> dict:
    """The job's last poll, once it stopped running (each poll drains the progress events)."""
    deadline = time.monotonic() + 30
    while (st := worker.poll(handle))["state"] == RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return st


def test_a_worker_keys_jobs_by_client_and_runs_one_at_a_time(tmp_path):
    """Two clients' identical job (one job id) on one worker: the second is refused while the
    first runs (one GPU, one job), and one client's release or cancel never touches the other's."""
    worker = ray_backend.Worker("v", store_root=str(tmp_path / "worker"))
    client = tmp_path / "client"
    args = (TASK, {"dataset": "digits"}, str(client), ray_backend.store_id(client))
    out = str(client / "jobs" / "job1")
    GATE.clear()
    assert worker.start("A/job1", *args, out) == {"started": True, "shared": True}
    assert worker.start("B/job1", *args, out) == {"busy": True}
    assert worker.start("A/job2", *args, out) == {"busy": True}
    worker.cancel("B/job1")
    worker.release("B/job1")
    assert worker.info()["busy"]
    GATE.set()
    done = finish(worker, "A/job1")
    assert (done["state"], done["error"]) == (DONE, None)
    assert worker.poll("B/job1")["error"] == "the worker does not know the job"
    assert worker.start("B/job1", *args, out)["started"]  # free again once A's job ended
    assert finish(worker, "B/job1")["state"] == DONE
    worker.release("A/job1")
    assert worker.poll("B/job1")["state"] == DONE and not worker.info()["busy"]


def test_a_released_running_job_keeps_its_worker_busy_until_it_stops(tmp_path):
    """A client that gives up on a running job (a Ray timeout) releases it: the job is stopped,
    and the worker takes no other job until it has."""
    worker = ray_backend.Worker("v", store_root=str(tmp_path / "worker"))
    args = (TASK, {"dataset": "digits"}, str(tmp_path), "a store the worker cannot see")
    GATE.clear()
    assert worker.start("A/j", *args, str(tmp_path / "out"))["shared"] is False
    worker.release("A/j")
    assert worker.start("B/j", *args, str(tmp_path / "out")) == {"busy": True}
    GATE.set()
    deadline = time.monotonic() + 30
    while worker.info()["busy"] or worker.jobs:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not (tmp_path / "worker" / "ray-jobs").exists() or not any(
        (tmp_path / "worker" / "ray-jobs").iterdir()
    )


def test_inputs_a_worker_cannot_see_are_sent_and_named_as_the_client_knows_them(tmp_path):
    """Another node: the client's imported dataset and uploaded weights are not there. The worker
    asks for them by content hash, keeps what it was sent, runs on its copies, and the job's
    files name the dataset and the weights as the client does."""
    data = tmp_path / "client-data" / "imported" / "shapes"
    write_shapes(data, per_class=2)
    weights = tmp_path / "client" / "uploads" / "weights" / "w.pt"
    weights.parent.mkdir(parents=True)
    weights.write_text("the weights")
    config = {"dataset": f"imagefolder:{data}", "original_weights": str(weights)}
    inputs = ray_backend.job_inputs(config)
    assert [(i["field"], i["kind"]) for i in inputs] == [
        ("dataset", "folder"),
        ("original_weights", "file"),
    ]
    pack = ray_backend.pack_input
    packed = {i["hash"]: (i["kind"], pack(i["kind"], Path(i["path"]))) for i in inputs}
    (tmp_path / "client-data").rename(tmp_path / "moved-data")  # not on the worker's node
    (tmp_path / "client").rename(tmp_path / "moved-client")
    worker = ray_backend.Worker("v", store_root=str(tmp_path / "worker"))
    client = str(tmp_path / "client")

    def start(handle: str) -> dict:
        return worker.start(handle, TASK, config, client, "x", f"{client}/jobs/j", inputs)

    assert sorted(start("C/j")["need"]) == sorted(packed)
    digest = inputs[1]["hash"]
    refused = worker.receive(digest, "file", b"other bytes")
    assert "changed on the way" in refused and not any((tmp_path / "worker").rglob("*.pt"))
    for digest, (kind, data_bytes) in packed.items():
        assert worker.receive(digest, kind, data_bytes) is None
    GATE.set()
    assert start("C/j") == {"started": True, "shared": False}
    assert finish(worker, "C/j")["state"] == DONE
    out = worker.jobs["C/j"]["out"]
    record = json.loads((out / "report.json").read_text())
    assert record == {
        "dataset": config["dataset"],
        "original_weights": str(weights),
        "files": ["dark/000.png", "dark/001.png", "light/000.png", "light/001.png"],
        "folder_in_worker_store": True,
        "weights": "the weights",
    }
    assert str(tmp_path / "worker") not in (out / "report.json").read_text()
    # the client unpacks the folder it fetches; the worker's copy of it goes on release
    ray_backend.unpack_folder(worker.fetch("C/j"), tmp_path / "back", "report.json")
    assert json.loads((tmp_path / "back" / "report.json").read_text()) == record
    worker.release("C/j")
    assert not out.exists()
    # a second job with the same files: nothing more to send
    assert start("D/j")["started"]
    assert finish(worker, "D/j")["state"] == DONE


def test_a_shared_store_reads_inputs_in_place_and_a_missing_one_names_its_path(tmp_path):
    """On one machine (or shared storage) the worker reads the client's own files: nothing is
    sent and the config is unchanged. A file gone on the client is no input: the job's own
    loader names it."""
    data = tmp_path / "data" / "imported" / "shapes"
    write_shapes(data, per_class=1)
    config = {"dataset": "imagefolder:shapes", "data_root": str(tmp_path / "data")}
    inputs = ray_backend.job_inputs(config)
    assert [i["path"] for i in inputs] == [str(data)]
    worker = ray_backend.Worker("v", store_root=str(tmp_path / "worker"))
    assert worker._localise(config, inputs) == (config, [], [])
    gone = {"dataset": "digits", "original_weights": str(tmp_path / "nowhere.pt")}
    assert ray_backend.job_inputs(gone) == []
