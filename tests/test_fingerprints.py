"""Content fingerprints: a dataset replaced under the same name, or edited original weights, get
new job and store keys (Run computes afresh instead of returning the old results); a registry
dataset's keys are the ones older versions wrote (the shipped demo models keep matching)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tmu.config import RunConfig, from_dict
from tmu.data import content_fingerprint
from tmu.jobs import DONE, QUEUED, JobKind, JobQueue, job_key
from tmu.pipeline import base_key

# Computed by the code before content fingerprints (commit 51dcbe5), for RunConfig(dataset, seed=0).
OLD_KEYS = {
    "digits": ("3fa604eec8a99829", "0cf229d3e222ab8e", "9098ca3b534cbaf5"),
    "mnist5k": ("cc35297d585bcd83", "86a50f2ac46cb7af", "a7c4fcca4c98c23e"),
}


def imported(root: Path, content: bytes, mtime_ns: int) -> None:
    """DATA_ROOT/imported/mine: two class folders of two files each, all with `mtime_ns`."""
    for cls in ("cat", "dog"):
        for i in range(2):
            path = root / "imported" / "mine" / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content + bytes([i]))
            os.utime(path, ns=(mtime_ns, mtime_ns))


def mine(root: Path, **extra) -> RunConfig:
    return from_dict(
        RunConfig, {"dataset": "imagefolder:mine", "data_root": str(root), "seed": 0, **extra}
    )


@pytest.mark.parametrize("dataset", sorted(OLD_KEYS))
def test_a_registry_datasets_keys_are_unchanged(dataset):
    cfg = from_dict(RunConfig, {"dataset": dataset, "seed": 0})
    assert content_fingerprint(dataset) == ""
    assert (job_key("run", cfg), job_key("embedding", cfg), base_key(cfg)) == OLD_KEYS[dataset]


def test_a_dataset_replaced_under_its_name_gets_new_job_and_store_keys(tmp_path):
    imported(tmp_path, b"old", 1_000_000_000_000_000_000)
    cfg = mine(tmp_path)
    before = content_fingerprint(cfg.dataset, tmp_path), job_key("run", cfg), base_key(cfg)
    assert len(before[0]) == 16
    assert before == (
        content_fingerprint(cfg.dataset, tmp_path),
        job_key("run", cfg),
        base_key(cfg),
    )
    shutil.rmtree(tmp_path / "imported" / "mine")  # as docs/security.md advises: rm -r, import
    imported(tmp_path, b"new", 1_000_000_000_000_000_001)
    after = content_fingerprint(cfg.dataset, tmp_path), job_key("run", cfg), base_key(cfg)
    assert all(a != b for a, b in zip(before, after))
    # One file edited in place (same size, a new mtime) is enough.
    os.utime(tmp_path / "imported/mine/dog/1.png", ns=(2_000_000_000_000_000_000,) * 2)
    assert job_key("run", cfg) != after[1] and base_key(cfg) != after[2]


def test_edited_original_weights_get_new_job_and_store_keys(tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"first weights")
    os.utime(weights, ns=(1_000_000_000_000_000_000,) * 2)
    cfg = from_dict(RunConfig, {"dataset": "digits", "original_weights": str(weights)})
    before = job_key("run", cfg), base_key(cfg)
    assert before[0] != job_key("run", from_dict(RunConfig, {"dataset": "digits"}))
    weights.write_bytes(b"other weights")
    os.utime(weights, ns=(1_000_000_000_000_000_001,) * 2)
    after = job_key("run", cfg), base_key(cfg)
    assert after[0] != before[0] and after[1] != before[1]


def test_run_after_a_replaced_dataset_computes_afresh(tmp_path):
    """The finding: Run returned the old results (the finished job folder of the same config)."""
    calls = []

    def task(cfg, store, out, progress):
        calls.append(cfg.dataset)
        (out / "report.json").write_text("{}")

    q = JobQueue(
        tmp_path / "store", kinds={"run": JobKind("run", task, lambda c: ["x"], "report.json")}
    )
    imported(tmp_path, b"old", 1_000_000_000_000_000_000)
    first = q.submit(mine(tmp_path))
    assert q.wait(first, timeout=10).state == DONE and q.submit(mine(tmp_path)) == first
    shutil.rmtree(tmp_path / "imported" / "mine")
    imported(tmp_path, b"new", 1_000_000_000_000_000_001)
    second = q.submit(mine(tmp_path))
    assert second != first and q.status(second).state in (QUEUED, "running", DONE)
    assert q.wait(second, timeout=10).state == DONE and len(calls) == 2


def walk_fingerprint(root: Path) -> str:
    """The listing hash of tmu.data.dataset_fingerprint before content_fingerprint replaced it
    (os.walk; every file's relative path, size and mtime_ns)."""
    import hashlib

    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            path = Path(dirpath) / f
            try:
                st = path.stat()
            except OSError:  # a dangling link
                continue
            h.update(f"{path.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def test_the_listing_is_dataset_fingerprints_and_a_readers_reuse_sees_a_replaced_folder(tmp_path):
    """content_fingerprint lists with os.scandir the value the os.walk listing of earlier
    versions gave (`walk_fingerprint`: the store keys of image folders do not change); a
    reader's reuse (max_age) still sees a replaced folder at once."""

    imported(tmp_path, b"old", 1_000_000_000_000_000_000)
    folder = tmp_path / "imported" / "mine"
    (folder / "cat" / "deep").mkdir()
    (folder / "cat" / "deep" / "x.png").write_bytes(b"x")
    (folder / "dangling.png").symlink_to(tmp_path / "nowhere")
    (folder / "linked").symlink_to(folder / "cat")
    assert content_fingerprint("imagefolder:mine", tmp_path) == walk_fingerprint(folder)
    old = content_fingerprint("imagefolder:mine", tmp_path, max_age=60)
    shutil.rmtree(folder)
    imported(tmp_path, b"new", 1_000_000_000_000_000_001)
    for path in (folder, folder / "cat", folder / "dog"):  # an import seconds later, as in use
        os.utime(path, ns=(3_000_000_000_000_000_000,) * 2)
    assert content_fingerprint("imagefolder:mine", tmp_path, max_age=60) != old


def test_the_dashboards_data_caches_read_a_replaced_dataset_afresh(tmp_path):
    """service.pool / roles / data_info were cached by name: a replaced dataset kept its old
    images, classes and split in the server until a restart."""
    import numpy as np
    from PIL import Image

    from dashboard import service

    def make(n: int, shade: int, mtime_ns: int) -> None:
        for cls in ("cat", "dog"):
            (folder / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(np.full((8, 8), shade, np.uint8)).save(folder / cls / f"{i}.png")
        for path in (folder, folder / "cat", folder / "dog"):
            os.utime(path, ns=(mtime_ns, mtime_ns))

    folder = tmp_path / "imported" / "mine"
    name = f"imagefolder:{folder}"
    make(5, 0, 1_000_000_000_000_000_000)
    assert len(service.pool(name)) == 10 and float(service.pool(name).x.max()) == 0
    assert sum(service.data_info(name, 0).sizes.values()) == 10
    shutil.rmtree(folder)
    make(7, 255, 1_000_000_000_000_000_001)
    assert len(service.pool(name)) == 14 and float(service.pool(name).x.min()) > 0  # white
    assert sum(len(ids) for ids in service.roles(name, 0)) == 14
    assert sum(service.data_info(name, 0).sizes.values()) == 14


@pytest.mark.slow
def test_a_run_of_a_replaced_dataset_refuses_to_load_its_data(tmp_path):
    """A finished run's sample ids point at the images it unlearned: once the dataset is replaced
    under its name, loading the run with its data is a RunFolderError saying so (not the new
    images under the old ids); its report still loads."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    from tmu.artifacts import Store
    from tmu.runs import RunFolderError, load_run, run_to_folder

    digits = load_digits()
    folder = tmp_path / "imported" / "three"
    for k, (image, label) in enumerate(zip(digits.images, digits.target)):
        if label < 3:
            path = folder / str(label) / f"{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((image * 16).clip(0, 255).astype(np.uint8)).save(path)
    cfg = mine(
        tmp_path,
        dataset="imagefolder:three",
        methods=["finetune"],
        gold_seeds=1,
        train={"epochs": 1},
        twin={"min_size": 20, "max_epochs": 1},
    )
    run_to_folder(cfg, tmp_path / "run", store=Store(tmp_path / "store"))
    assert load_run(tmp_path / "run").dataset is not None
    victim = next(folder.glob("0/*.png"))
    victim.unlink()  # the dataset edited: one image fewer, every later id shifted
    with pytest.raises(RunFolderError, match=r"changed since this run"):
        load_run(tmp_path / "run")
    assert load_run(tmp_path / "run", load_data=False).report["config"]["dataset"] == cfg.dataset
