"""Bring your own data and model from the browser (Data page): a zip of class folders becomes a
dataset, a .pt file becomes the original model; hostile uploads and names are refused with a
message and write nothing; no file-system path is ever taken from the browser."""

from __future__ import annotations

import ast
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from dash_helpers import ROOT, tiny_state

APP = str(ROOT / "dashboard" / "app.py")


def png(color: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), color=color).save(buf, format="PNG")
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


PETS = {f"{c}/{i}.png": png(v + 9 * i) for c, v in (("cat", 10), ("dog", 200)) for i in range(6)}


def cnn_weights(num_classes: int = 10) -> bytes:
    from tmu.models import build_model

    buf = io.BytesIO()
    torch.manual_seed(0)
    torch.save(build_model("cnn", 1, num_classes).state_dict(), buf)
    return buf.getvalue()


class Boom:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/tmu-upload-pwned"),))


def data_page(tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("TMU_DATA", str(tmp_path / "data"))
    # in-process here (the fast lane); test_dash_upload_memory.py runs the child processes
    monkeypatch.setenv("TMU_UPLOAD_ISOLATION", "0")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception and at.title[0].value == "Data"
    return at


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def test_an_uploaded_zip_becomes_a_dataset_everyone_can_pick(tmu_home, tmp_path, monkeypatch):
    at = data_page(tmp_path, monkeypatch)
    at.file_uploader(key="upload.data").upload("my pets.zip", zip_bytes(PETS), "application/zip")
    at.text_input(key="upload.data_name").input("pets")
    at.run()
    at.button[0].click().run()  # Import
    assert not at.exception and not at.error, [e.value for e in at.error]
    dest = (tmp_path / "data" / "imported" / "pets").resolve()
    assert at.session_state["w.dataset"] == f"imagefolder:{dest}"
    picker = at.selectbox(key="w.dataset")
    assert "pets (your images)" in picker.options and picker.value == f"imagefolder:{dest}"
    assert [m.value for m in at.metric][:2] == ["2", "8"]  # 2 classes; D holds 8 of the 12
    assert len(files_under(dest)) == 2 + 12  # two class folders, twelve images, nothing else
    # the same name again is refused and the stored dataset is kept
    at.button[0].click().run()
    assert "a dataset named 'pets' already exists at <data>/imported/pets" in at.error[0].value
    assert len(files_under(dest)) == 14


@pytest.mark.parametrize(
    "name, files, message",
    [
        ("../escape", PETS, "dataset name '../escape' is not allowed"),
        ("/tmp/abs", PETS, "dataset name '/tmp/abs' is not allowed"),
        ("a/b", PETS, "dataset name 'a/b' is not allowed"),
        ("evil", {**PETS, "../../evil.png": png(1)}, "'../../evil.png' points outside"),
        ("one", {"cat/a.png": png(1), "cat/b.png": png(2)}, "need at least 2 classes"),
        ("junk", {"x/readme.txt": b"hi"}, "holds no image"),
    ],
)
def test_hostile_names_and_archives_are_refused_and_write_nothing(
    tmu_home, tmp_path, monkeypatch, name, files, message
):
    at = data_page(tmp_path, monkeypatch)
    at.file_uploader(key="upload.data").upload("x.zip", zip_bytes(files), "application/zip")
    at.text_input(key="upload.data_name").input(name)
    at.run()
    at.button[0].click().run()
    assert not at.exception
    assert message in at.error[0].value and "Not imported" in at.error[0].value
    assert files_under(tmp_path / "data" / "imported") == []
    assert not (tmp_path / "evil.png").exists() and not Path("/tmp/abs").exists()
    assert at.session_state["w.dataset"] == "digits"


def test_uploaded_weights_become_the_original_of_this_tabs_runs(tmu_home, tmp_path, monkeypatch):
    at = data_page(tmp_path, monkeypatch)
    at.file_uploader(key="upload.weights").upload("../../mine.pt", cnn_weights(), "x")
    at.run()
    next(b for b in at.button if b.label == "Use as the original model").click().run()
    assert not at.exception and not at.error
    assert "unlearn your weights `../../mine.pt (" in at.success[0].value
    stored = Path(at.session_state["own.weights"])
    assert stored.parent == (tmu_home / "uploads" / "weights").resolve()  # named by its hash
    assert stored.read_bytes() == cnn_weights()

    from dashboard import service

    state = {**tiny_state(), "own.weights": str(stored), "own.weights_name": "mine.pt (x)"}
    assert service.make_config(state).original_weights == str(stored)
    # weights for another class count: a message on the page and at submit, no job
    state["own.weights"] = str(service.uploads.weights_dir() / "nope.pt")
    assert service.weights_in_use(state) is None  # a file that is gone is not used
    # ... nor quietly replaced by a trained original: evicted by the store budget, say so
    job, error = service.submit_run(state, service.backend(tmu_home))
    assert job is None and "'mine.pt (x)' are no longer on the server" in error
    wrong = {**state}
    service.save_weights(wrong, cnn_weights(num_classes=3), "three.pt")
    job, error = service.submit_run(wrong, service.backend(tmu_home))
    assert job is None and "has 3 output classes; the dataset has 10" in error
    assert "'three.pt (" in error and str(tmu_home) not in error
    next(b for b in at.button if b.label == "Train the original model instead").click().run()
    assert "own.weights" not in at.session_state


def test_weights_carrying_code_are_refused_unread(tmu_home, tmp_path, monkeypatch):
    at = data_page(tmp_path, monkeypatch)
    Path("/tmp/tmu-upload-pwned").unlink(missing_ok=True)
    evil = io.BytesIO()
    torch.save({"w": torch.zeros(1), "x": Boom()}, evil)
    at.file_uploader(key="upload.weights").upload("evil.pt", evil.getvalue(), "x")
    at.run()
    next(b for b in at.button if b.label == "Use as the original model").click().run()
    assert not at.exception
    assert "Not used: weights file 'evil.pt' is refused: it holds more than tensors" in (
        at.error[0].value
    )
    assert not Path("/tmp/tmu-upload-pwned").exists()
    assert "own.weights" not in at.session_state
    digest = hashlib.sha256(evil.getvalue()).hexdigest()[:16]
    kept = files_under(tmu_home / "uploads" / "weights")
    assert f"{digest}.pt" not in kept and not [f for f in kept if not f.endswith(".pt")]


# The audit: what the browser can send, and where it can go.

PAGES = sorted((ROOT / "dashboard").rglob("*.py"))
FREE_TEXT = {"text_input", "text_area", "chat_input", "file_uploader"}
"""Widgets whose value the browser chooses freely (a selectbox, radio or multiselect returns one
of the options the server drew; a number_input is a bounded number)."""
ALLOWED = {
    ("data.py", "file_uploader"): "bytes of a zip, checked whole by tmu.importer",
    ("data.py", "text_input"): "a dataset name, checked by tmu.importer.check_name (no '/')",
    ("forget.py", "file_uploader"): "bytes of an id list, parsed into ints",
}


def calls(tree: ast.AST) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            out.append((node.func.attr, node.lineno))
    return out


QUERY_READERS = {"views/tour.py"}
"""The pages that read URL query parameters: only through `service.tour.parse_link`, which
checks every value against the registries (test_dash_tour.py feeds it hostile links)."""


def test_no_file_system_path_is_taken_from_the_browser():
    """Every free-text widget in the app is listed with what its value becomes, only the Tour
    reads URL query parameters (through parse_link), and no uploaded file's own name is ever
    used to make a path."""
    seen = {}
    for file in PAGES:
        text = file.read_text()
        for attr, line in calls(ast.parse(text)):
            if attr in FREE_TEXT:
                seen[(file.name, attr)] = line
        if file.relative_to(ROOT / "dashboard").as_posix() in QUERY_READERS:
            assert "parse_link(params)" in text, f"{file} reads query parameters unchecked"
        else:
            assert "query_params" not in text, f"{file} reads URL query parameters"
    assert set(seen) == set(ALLOWED), f"free-text widgets changed: {sorted(seen)}; audit them"
    source = (ROOT / "dashboard" / "service" / "uploads.py").read_text()
    # the upload's own file name is only shown (WEIGHTS_NAME), never joined into a path
    assert "filename" not in "".join(
        line for line in source.splitlines() if "/" in line and "Path(" in line
    )


@pytest.mark.parametrize(
    "name", ["../x", "..", "/etc", "a/b", "x\\..\\y", "", " ", ".hidden", "a" * 65, "é"]
)
def test_a_dataset_name_from_the_browser_never_becomes_a_path(tmp_path, monkeypatch, name):
    from dashboard import service
    from tmu.data import DatasetError

    monkeypatch.setenv("TMU_DATA", str(tmp_path / "data"))
    with pytest.raises(DatasetError, match="is not allowed"):
        service.import_upload(zip_bytes(PETS), name)
    assert files_under(tmp_path) in ([], ["data", "data/imported"])


@pytest.mark.parametrize(
    "code, stderr, message",
    [
        (-9, "", "the archive needs more memory than 1024 MB (TMU_IMPORT_MEMORY_MB) to decode"),
        (1, "Traceback ...\nMemoryError", "needs more memory than 1024 MB"),
        (2, "INFO x\nerror: zip member 'a.png' is encrypted", "zip member 'a.png' is encrypted"),
        (1, "Traceback ...\nKeyError: 'x'", "could not be imported (the reason is in the server"),
    ],
)
def test_a_failed_import_child_becomes_a_message_and_leaves_no_folder(
    tmp_path, monkeypatch, code, stderr, message
):
    """What the child's exit says (killed by a signal, out of memory, its own error line, a
    crash) becomes one DatasetError; the temporary folder a killed child left is removed."""
    import subprocess

    from dashboard.service import uploads
    from tmu.data import DatasetError

    monkeypatch.setenv("TMU_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TMU_UPLOAD_ISOLATION", "1")
    monkeypatch.delenv("TMU_IMPORT_MEMORY_MB", raising=False)
    seen = []

    def child(args):
        seen.append(args)
        (tmp_path / "data" / "imported" / ".pets.k1ll3d").mkdir(parents=True)
        return subprocess.CompletedProcess(args, code, "", stderr)

    monkeypatch.setattr(uploads, "_child", child)
    with pytest.raises(DatasetError) as err:
        uploads.import_upload(zip_bytes(PETS), "pets")
    assert message in str(err.value)
    assert "--memory-mb" in seen[0] and seen[0][seen[0].index("--max-pool-bytes") + 1] == str(
        384 * 2**20
    )
    left = files_under(tmp_path / "data" / "imported")
    assert left == ([] if code != 2 else [".pets.k1ll3d"])  # a child's own error cleaned up
