"""The server's memory under the worst upload its limits let through (issue 18): the import runs
in a memory-capped child, the pages hold the pool as uint8 codes, so the server process grows by
less than 200 MB; an import that needs more memory than its cap fails with a message."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # starts child processes and decodes ~100 MB of images


def worst_zip() -> bytes:
    """RGB images at the upload's pixel limit (2048 x 2048, one size: they keep it), as many as
    the decoded-size limit allows: the largest pool an upload can make, in a ~100 KB zip."""
    from dashboard.service.uploads import UPLOAD_LIMITS

    side = int(UPLOAD_LIMITS.max_pixels**0.5)
    count = UPLOAD_LIMITS.max_pool_bytes // (4 * 3 * side * side)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(count):
            img = io.BytesIO()
            Image.new("RGB", (side, side), color=(i * 30 % 256, 90, 200)).save(img, format="PNG")
            zf.writestr(f"c{i % 2}/{i}.png", img.getvalue())
    return buf.getvalue()


def vm(field: str) -> int:
    """A /proc/self/status field (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    raise KeyError(field)


def test_the_worst_upload_raises_the_servers_memory_by_under_200_mb(tmp_path, monkeypatch):
    from dashboard.service import data, uploads

    monkeypatch.setenv("TMU_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TMU_UPLOAD_ISOLATION", "1")
    archive = worst_zip()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = vm("VmRSS")
    dataset = uploads.import_upload(archive, "worst")
    p = data.pool(dataset)
    shown = data.images(dataset, [0, len(p) - 1])
    grew = vm("VmHWM") - before
    print(f"upload of {len(archive):,} bytes, pool {tuple(p.x.shape)} uint8: +{grew} MB peak")
    assert p.x.dtype.itemsize == 1 and len(p) >= 7 and shown[0].shape == (2048, 2048, 3)
    assert grew < 200


def test_an_import_over_its_memory_cap_fails_with_a_message(tmp_path, monkeypatch):
    from tmu.data import DatasetError

    from dashboard.service import uploads

    monkeypatch.setenv("TMU_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TMU_UPLOAD_ISOLATION", "1")
    monkeypatch.setenv("TMU_IMPORT_MEMORY_MB", "64")
    with pytest.raises(DatasetError, match="needs more memory than"):
        uploads.import_upload(worst_zip(), "tight")
    assert [p.name for p in (tmp_path / "data" / "imported").iterdir()] == []


def test_weights_are_checked_once_in_a_child_and_fitted_from_their_shapes(tmu_home, monkeypatch):
    import torch

    from tmu.models import WeightsError, build_model

    from dashboard.service import uploads

    monkeypatch.setenv("TMU_UPLOAD_ISOLATION", "1")
    buf = io.BytesIO()
    torch.save({"head.weight": torch.zeros(2**21)}, buf)  # 8 MB of zeros, deflated below
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info))
    state: dict = {}
    with pytest.raises(WeightsError, match=r"weights file 'bomb.pt': entry .* expands \d+x"):
        uploads.save_weights(state, bomb.getvalue(), "bomb.pt")
    good = io.BytesIO()
    torch.save(build_model("cnn", 1, 10).state_dict(), good)
    digest = uploads.save_weights(state, good.getvalue(), "mine.pt")
    verdict = uploads._verdicts[digest]
    assert verdict.error is None and verdict.shapes["head.weight"][0] == 10
    assert uploads._misfit(state["own.weights"], "digits", "cnn") is None
    assert "does not fit model 'resnet9'" in uploads._misfit(
        state["own.weights"], "digits", "resnet9"
    )
