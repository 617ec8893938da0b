"""Tests for scripts/gpu_bench.py on the CPU: the clear refusal without a GPU, and its helpers
(the synthetic CIFAR-like set, stage timing, the markdown table) at tiny sizes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tmu.accel import encode_pool

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_bench.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_bench"] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


bench = load_script()


@pytest.mark.slow
def test_without_a_gpu_it_refuses_in_one_line_with_exit_code_2():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine with one
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "CUDA GPU" in lines[0] and lines[0].startswith("gpu_bench:")


def test_synthetic_cifar_is_an_8_bit_balanced_seeded_pool():
    pool = bench.synthetic_cifar(200, seed=3)
    assert pool.name == bench.SYNTHETIC and pool.x.shape == (200, 3, 32, 32)
    assert pool.x.dtype == torch.float32 and 0.0 <= float(pool.x.min()) <= float(pool.x.max()) <= 1
    assert encode_pool(pool.x).dtype == torch.uint8  # every value is k/255: stored as uint8 on GPU
    assert np.bincount(pool.y.numpy()).tolist() == [20] * 10 and pool.num_classes == 10
    assert torch.equal(bench.synthetic_cifar(200, seed=3).x, pool.x)
    assert not torch.equal(bench.synthetic_cifar(200, seed=4).x, pool.x)


def test_synthetic_cifar_classes_are_learnable_but_not_trivial():
    """Nearest class mean on raw pixels, fitted on one half, scored on the other: well above
    chance (0.1), yet short of perfect (the mixed images are hard)."""
    pool = bench.synthetic_cifar(1000, seed=0)
    x, y = pool.x.flatten(1).numpy(), pool.y.numpy()
    means = np.stack([x[:500][y[:500] == k].mean(0) for k in range(10)])
    pred = ((x[500:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    acc = float((pred == y[500:]).mean())
    assert 0.5 < acc < 0.99, acc


def test_random_cifar_is_8_bit():
    pool = bench.random_cifar(16)
    assert pool.x.shape == (16, 3, 32, 32) and encode_pool(pool.x).dtype == torch.uint8
    assert pool.y.shape == (16,) and int(pool.y.max()) < 10


def test_stage_seconds_run_from_one_stage_start_to_the_next():
    marks = [("original", 10.0), ("gold 1/1", 11.5), ("evaluate", 14.0)]
    assert bench.stage_seconds(marks, 15.0) == {"original": 1.5, "gold 1/1": 2.5, "evaluate": 1.0}
    assert bench.stage_seconds([], 3.0) == {}


def test_markdown_names_the_device_and_every_measurement():
    pipe = {
        "dataset": "mnist5k",
        "model": "cnn",
        "epochs": 20,
        "gold_seeds": 3,
        "seconds": 50.0,
        "gold_seconds": 4.0,
        "peak_gib": 1.5,
        "original_test_acc": 0.95,
        "stages": {"original": 4.0},
    }
    result = {
        "device": "NVIDIA H100",
        "torch": "2.9",
        "mode": "full",
        "throughput": [
            {"model": "resnet9", "batch": 512, "images_per_s": 61234.5, "peak_gib": 2.0}
        ],
        "gold_retrain": {
            "model": "resnet9",
            "images": 45000,
            "epochs": 16,
            "seconds": 14.0,
            "images_per_s": 51428.0,
            "peak_gib": None,
        },
        "pipeline_mnist5k": pipe,
        "errors": {"pipeline_synthetic": "RuntimeError: CUDA out of memory"},
        "skipped": [],
    }
    text = bench.markdown(result)
    assert "**pipeline_synthetic failed**: RuntimeError: CUDA out of memory" in text
    assert "device: NVIDIA H100" in text
    assert "| resnet9 | 512 | 61,234 | 2.00 |" in text
    assert "| resnet9 | 45,000 x 16 | 14.0 | 51,428 | - |" in text
    assert "| mnist5k | cnn | 20 | 3 | 50.0 | 4.0 | 1.50 | 0.950 |" in text
    assert "mnist5k stages (s): original 4.0" in text


def smoke(tmp_path, *extra: str) -> tuple[int, dict, str]:
    out = tmp_path / "bench.json"
    code = bench.main(["--cpu-smoke", "--json", str(out), *extra])
    return code, json.loads(out.read_text()), str(out)


@pytest.mark.slow
def test_the_cpu_smoke_goes_through_the_gpu_only_branches(tmp_path, monkeypatch, capsys):
    """uint8 pool codes, bf16 autocast and channels-last, as on a GPU, in every part it runs."""
    import tmu.accel as accel

    seen = {"uint8": 0, "amp": 0, "channels_last": 0}
    decode, resolve = accel.decode, accel.FastPath.resolve

    def spy_decode(x):
        seen["uint8"] += x.dtype == torch.uint8
        return decode(x)

    def spy_resolve(*args, **kwargs):
        fast = resolve(*args, **kwargs)
        seen["amp"] += fast.amp
        seen["channels_last"] += fast.channels_last
        return fast

    monkeypatch.setattr(accel, "decode", spy_decode)
    monkeypatch.setattr("tmu.training.decode", spy_decode)
    monkeypatch.setattr(accel.FastPath, "resolve", staticmethod(spy_resolve))
    code, result, _ = smoke(tmp_path, "--parts", "throughput,gold_retrain,pipeline_mnist5k")
    assert code == 0 and result["errors"] == {} and result["mode"] == "cpu-smoke"
    assert {t["model"] for t in result["throughput"]} == {"cnn", "resnet9", "resnet18"}
    assert result["pipeline_mnist5k"]["original_test_acc"] >= 0
    assert "pipeline_synthetic" not in result
    assert all(v > 0 for v in seen.values()), seen
    assert "| pipeline |" in capsys.readouterr().out


def test_a_failing_part_is_recorded_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("the device fell over")

    monkeypatch.setattr(bench, "gold_retrain", broken)
    monkeypatch.setattr(bench, "throughput", lambda name, x, y, batch, device: {
        "model": name, "batch": batch, "images_per_s": 1.0, "peak_gib": None})  # fmt: skip
    code, result, path = smoke(tmp_path, "--parts", "throughput,gold_retrain")
    assert code == 1 and result["errors"] == {"gold_retrain": "RuntimeError: the device fell over"}
    assert len(result["throughput"]) == 3  # the part before still stands
    out = capsys.readouterr().out
    assert "**gold_retrain failed**: RuntimeError: the device fell over" in out


def test_past_the_deadline_the_remaining_parts_are_skipped_and_the_json_says_so(tmp_path):
    code, result, _ = smoke(tmp_path, "--deadline", "0")
    assert code == 0 and result["skipped"] == ["throughput", "gold_retrain", *bench.PIPELINES]
    assert result["deadline_s"] == 0


@pytest.mark.slow
def test_the_one_wrapper_checks_every_import_and_leaves_the_bench_in_out(tmp_path):
    """scripts/gpu_run.sh, as a lent GPU machine runs it (here on the CPU smoke): the import
    check, the bench's JSON and log under $OUT, the bench's exit status."""
    env = {
        **os.environ,
        "OUT": str(tmp_path),
        "PYTHON": sys.executable,
        "GPU_BENCH_ARGS": "--cpu-smoke --parts throughput",
    }
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_run.sh"), "120"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    imports = (tmp_path / "imports.txt").read_text().splitlines()
    assert all(line.startswith("ok ") for line in imports[:-1]) and "torch" in imports[-1]
    result = json.loads((tmp_path / "gpu_bench.json").read_text())
    assert result["mode"] == "cpu-smoke" and len(result["throughput"]) == 3
    assert "| training throughput |" in (tmp_path / "gpu_bench.txt").read_text()
