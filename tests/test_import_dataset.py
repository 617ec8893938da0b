"""`python -m tmu import-dataset FILE.zip --name NAME`: a zip of class folders becomes
`imagefolder:NAME`; a hostile or broken archive is refused by name and writes nothing."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tmu import cli
from tmu.data import DatasetError, load_dataset
from tmu.importer import ImportLimits, import_dataset


def png(color: int = 0, size: int = 8, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (size, size), color=color).save(buf, format="PNG")
    return buf.getvalue()


def make_zip(path: Path, files: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


GOOD = {
    "pets/cat/a.png": png(10),
    "pets/cat/b.png": png(20),
    "pets/dog/a.png": png(200),
    "pets/dog/b.png": png(220),
    "pets/dog/notes.txt": b"not an image",
    "__MACOSX/pets/cat/._a.png": b"resource fork",
}


def test_a_zip_of_class_folders_becomes_a_dataset(tmp_path, capsys):
    archive = make_zip(tmp_path / "pets.zip", GOOD)
    root = tmp_path / "data"
    code = cli.main(["import-dataset", str(archive), "--name", "pets", "--data-root", str(root)])
    out = capsys.readouterr().out
    assert code == 0 and "imported pets: 4 images, 2 classes (cat, dog)" in out
    assert "skipped 2 non-image or hidden files" in out and "--dataset imagefolder:pets" in out
    pool = load_dataset("imagefolder:pets", root)
    assert len(pool) == 4 and pool.classes == ("cat", "dog") and pool.y.tolist() == [0, 0, 1, 1]
    # a name is never overwritten
    with pytest.raises(DatasetError, match="a dataset named 'pets' already exists"):
        import_dataset(archive, "pets", root)


@pytest.mark.parametrize(
    "files, links, limits, message",
    [
        ({**GOOD, "../evil.png": png()}, (), None, r"'../evil.png' points outside the archive"),
        ({**GOOD, "/tmp/evil.png": png()}, (), None, r"'/tmp/evil.png' points outside"),
        ({**GOOD, "a/../../x.png": png()}, (), None, "points outside the archive"),
        (GOOD, ("pets/cat/link.png",), None, "is a symbolic link; links are refused"),
        ({"bomb/a/big.png": bytes(50 << 20), **GOOD}, (), None, r"expands \d+x .*zip bomb"),
        (GOOD, (), ImportLimits(max_files=3), "more than 3 images"),
        (GOOD, (), ImportLimits(max_bytes=100), "more than 100 bytes"),
        (GOOD, (), ImportLimits(max_classes=1), "2 classes"),
        (GOOD, (), ImportLimits(max_pixels=10), r"in.zip:cat/a.png is 8 x 8 = 64 pixels, over"),
        ({"cat/a.png": png(), "cat/b.png": png(5)}, (), None, "need at least 2 classes"),
        ({"a.png": png(), "cat/b.png": png()}, (), None, "'a.png' is not in a class folder"),
        ({"x/readme.txt": b"hi"}, (), None, "holds no image"),
        ({"c/a.png": b"\x89PNG broken", "d/b.png": png()}, (), None, "in.zip:c has no images"),
    ],
)
def test_hostile_or_broken_archives_are_refused_and_write_nothing(
    tmp_path, files, links, limits, message
):
    archive = make_zip(tmp_path / "in.zip", files, links)
    root = tmp_path / "data"
    with pytest.raises(DatasetError, match=message):
        import_dataset(archive, "x", root, limits)
    left = [p for p in (root / "imported").rglob("*")] if (root / "imported").exists() else []
    assert left == []  # no dataset, no temp folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "in.zip"] or not root.exists()


def test_not_a_zip_and_a_bad_name_are_clear_errors(tmp_path, capsys):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"PK\x03\x04 nope")
    assert cli.main(["import-dataset", str(fake), "--name", "ok"]) == 2
    assert "is not a readable zip file" in capsys.readouterr().err
    good = make_zip(tmp_path / "g.zip", GOOD)
    assert cli.main(["import-dataset", str(good), "--name", "../up"]) == 2
    assert "dataset name '../up' is not allowed" in capsys.readouterr().err
