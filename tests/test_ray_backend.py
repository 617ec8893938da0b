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
import time
from pathlib import Path

import pytest
import ray  # a requirement: a missing install must fail, not skip
import torch

from ray_test_env import RAY_ENV, RAY_TOKEN
from tmu import cli
from tmu.config import RunConfig, from_dict
from tmu.jobs import CANCELLED, DONE, RUNNING, JobQueue, ThreadRunner

from tmu import ray_backend

pytestmark = pytest.mark.slow  # every test here starts or reaches a real Ray

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


def test_describe_shows_the_cluster_and_its_worker(runner):
    desc = JobQueue(runner=runner).describe()
    assert desc["backend"] == "ray" and desc["gpus"] == 1.0 and desc["nodes"] == 1
    assert desc["parallel_jobs"] == 1 and len(desc["workers"]) == 1
    worker = desc["workers"][0]
    assert worker["version"] == ray_backend.code_version() and worker["pid"] != os.getpid()


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


def test_unreachable_address_is_a_clear_error_within_seconds(tmp_path):
    start = time.monotonic()
    proc = run_cli(
        ["run", "--backend", "ray", "--ray-address", f"127.0.0.1:{free_port()}", "-q"],
        {"TMU_HOME": str(tmp_path)},
    )
    assert proc.returncode == 2, proc.stderr
    assert "cannot reach the Ray cluster at 127.0.0.1:" in proc.stderr
    assert "Traceback" not in proc.stderr and time.monotonic() - start < 20


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
