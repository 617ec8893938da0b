"""Tests for tmu.data: embedded datasets, torchvision loaders on tiny native-format files,
imagefolder."""

from __future__ import annotations

import pickle
import re
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets as tvd

from tmu import data
from tmu.data import DATASETS, DatasetError, Pool, check_dataset_name, dataset_names, load_dataset

# ----------------------------------------------------------------------------- native-format
# writers


def _write_idx(path: Path, arr: np.ndarray) -> None:
    """Write a uint8 array as an (uncompressed) IDX file: magic 0x0000 08 <ndim>, big-endian
    dims."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def _write_mnist(root: Path, folder: str, n_train: int = 6, n_test: int = 4, seed: int = 0):
    """Tiny MNIST-layout files in root/<folder>/raw/; returns (images, labels) train+test."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_train + n_test, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n_train + n_test, dtype=np.uint8)
    raw = root / folder / "raw"
    _write_idx(raw / "train-images-idx3-ubyte", x[:n_train])
    _write_idx(raw / "train-labels-idx1-ubyte", y[:n_train])
    _write_idx(raw / "t10k-images-idx3-ubyte", x[n_train:])
    _write_idx(raw / "t10k-labels-idx1-ubyte", y[n_train:])
    return x, y


def _pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _write_cifar10(root: Path, per_batch: int = 2, n_test: int = 3):
    """Tiny cifar-10-batches-py/ pickles; returns (images NHWC, labels, class names) train+test."""
    rng = np.random.default_rng(1)
    n = 5 * per_batch + n_test
    flat = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)  # CIFAR rows: R plane, G, B
    y = rng.integers(0, 10, n).tolist()
    folder = root / "cifar-10-batches-py"
    for b in range(5):
        rows = slice(b * per_batch, (b + 1) * per_batch)
        _pickle(folder / f"data_batch_{b + 1}", {"data": flat[rows], "labels": y[rows]})
    _pickle(folder / "test_batch", {"data": flat[5 * per_batch :], "labels": y[5 * per_batch :]})
    names = [f"c10_{i}" for i in range(10)]
    _pickle(folder / "batches.meta", {"label_names": names})
    return flat.reshape(n, 3, 32, 32), y, names


def _write_cifar100(root: Path, n_train: int = 5, n_test: int = 3):
    """Tiny cifar-100-python/ pickles in the real layout (train / test dicts with data,
    fine_labels, coarse_labels; meta with fine_label_names, coarse_label_names); returns (images
    NCHW, fine labels, fine names, coarse labels, coarse names) train+test."""
    rng = np.random.default_rng(2)
    n = n_train + n_test
    flat = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
    fine = rng.integers(0, 100, n).tolist()
    coarse = [(7 * f + 3) % 20 for f in fine]  # any fixed fine -> super-class map
    folder = root / "cifar-100-python"
    for name, rows in (("train", slice(0, n_train)), ("test", slice(n_train, n))):
        _pickle(
            folder / name,
            {"data": flat[rows], "fine_labels": fine[rows], "coarse_labels": coarse[rows]},
        )
    names = [f"c100_{i}" for i in range(100)]
    coarse_names = [f"super_{i}" for i in range(20)]
    _pickle(folder / "meta", {"fine_label_names": names, "coarse_label_names": coarse_names})
    return flat.reshape(n, 3, 32, 32), fine, names, coarse, coarse_names


def _no_md5(cls: type) -> type:
    """Subclass of a torchvision CIFAR class that still requires the files but skips their md5
    sums."""
    return type(
        cls.__name__,
        (cls,),
        {
            "train_list": [[f, None] for f, _ in cls.train_list],
            "test_list": [[f, None] for f, _ in cls.test_list],
            "meta": {**cls.meta, "md5": None},
        },
    )


@pytest.fixture
def no_md5(monkeypatch):
    monkeypatch.setitem(data._TV_CLASSES, "cifar10", _no_md5(tvd.CIFAR10))
    monkeypatch.setitem(data._TV_CLASSES, "cifar100", _no_md5(tvd.CIFAR100))
    monkeypatch.setitem(data._TV_CLASSES, "cifar100-coarse", _no_md5(tvd.CIFAR100))


# ----------------------------------------------------------------------------- embedded datasets


def test_mnist5k_real_values():
    pool = load_dataset("mnist5k")
    assert (
        pool.x.shape == (5000, 1, 28, 28)
        and pool.x.dtype == torch.float32
        and pool.x.is_contiguous()
    )
    assert pool.x.min().item() == 0.0 and pool.x.max().item() == 1.0
    assert pool.y.dtype == torch.int64 and pool.y[0].item() == 0 and pool.y[-1].item() == 9
    assert torch.bincount(pool.y).tolist() == [500] * 10
    assert pool.classes == tuple(str(d) for d in range(10)) and pool.official_test is None
    assert (len(pool), pool.num_classes, pool.in_channels, pool.x.shape[2]) == (5000, 10, 1, 28)
    # pixel values are k/255: the stored 0..255 integers round-trip exactly
    k = pool.x * 255
    assert torch.equal(k, k.round())


def test_digits_real_values():
    pool = load_dataset("digits")
    assert pool.x.shape == (1797, 1, 8, 8) and pool.y.shape == (1797,)
    assert pool.x.min().item() == 0.0 and pool.x.max().item() == 1.0
    assert torch.equal(pool.x * 16, (pool.x * 16).round())
    assert pool.y[:10].tolist() == list(range(10)) and pool.official_test is None
    assert pool.num_classes == 10 and pool.x.shape[2] == 8


# ----------------------------------------------------------------------------- torchvision loaders


@pytest.mark.parametrize(
    "name, folder, cls",
    [("mnist", "MNIST", tvd.MNIST), ("fashion-mnist", "FashionMNIST", tvd.FashionMNIST)],
)
def test_mnist_family_round_trip(tmp_path, name, folder, cls):
    x, y = _write_mnist(tmp_path, folder)
    pool = load_dataset(name, root=tmp_path)
    assert (
        pool.x.shape == (10, 1, 28, 28) and pool.x.dtype == torch.float32 and pool.x.is_contiguous()
    )
    assert pool.y.tolist() == y.tolist()
    assert torch.equal(pool.x[:, 0], torch.from_numpy(x).float() / 255)
    assert pool.official_test.dtype == np.int64 and pool.official_test.tolist() == [6, 7, 8, 9]
    assert pool.classes == tuple(cls.classes) and pool.name == name


def test_cifar10_round_trip(tmp_path, no_md5):
    x, y, names = _write_cifar10(tmp_path)
    pool = load_dataset("cifar10", root=str(tmp_path))
    assert pool.x.shape == (13, 3, 32, 32) and pool.x.is_contiguous()
    assert pool.y.tolist() == y and pool.classes == tuple(names)
    assert torch.equal(pool.x, torch.from_numpy(x).float() / 255)
    assert pool.official_test.tolist() == [10, 11, 12]
    assert (pool.in_channels, pool.x.shape[2], pool.num_classes) == (3, 32, 10)


def test_cifar100_round_trip(tmp_path, no_md5):
    x, fine, names, _, _ = _write_cifar100(tmp_path)
    pool = load_dataset("cifar100", root=tmp_path)
    assert pool.x.shape == (8, 3, 32, 32)
    assert pool.y.tolist() == fine and pool.classes == tuple(names) and pool.num_classes == 100
    assert torch.equal(pool.x, torch.from_numpy(x).float() / 255)
    assert pool.official_test.tolist() == [5, 6, 7]


def test_cifar100_coarse_uses_the_super_classes_stored_in_the_files(tmp_path, no_md5):
    x, fine, _, coarse, coarse_names = _write_cifar100(tmp_path)
    pool = load_dataset("cifar100-coarse", root=tmp_path)
    assert pool.name == "cifar100-coarse" and pool.x.shape == (8, 3, 32, 32)
    assert pool.y.dtype == torch.int64 and pool.y.tolist() == coarse != fine
    assert pool.classes == tuple(coarse_names) and pool.num_classes == 20
    assert torch.equal(pool.x, torch.from_numpy(x).float() / 255)  # same images as cifar100
    assert pool.official_test.tolist() == [5, 6, 7]  # the official test split is kept


def test_cifar100_coarse_without_coarse_labels_names_the_file(tmp_path, no_md5):
    _write_cifar100(tmp_path)
    test_file = tmp_path / "cifar-100-python" / "test"
    entry = pickle.loads(test_file.read_bytes())
    del entry["coarse_labels"]
    _pickle(test_file, entry)
    assert len(load_dataset("cifar100", root=tmp_path)) == 8  # fine labels still load
    with pytest.raises(
        DatasetError, match=rf"cifar100-coarse: cannot read 'coarse_labels' from {test_file}"
    ):
        load_dataset("cifar100-coarse", root=tmp_path)


def test_cifar100_coarse_label_outside_the_names(tmp_path, no_md5):
    _write_cifar100(tmp_path)
    meta = tmp_path / "cifar-100-python" / "meta"
    _pickle(meta, {"fine_label_names": [str(i) for i in range(100)], "coarse_label_names": ["a"]})
    with pytest.raises(DatasetError, match=r"cifar100-coarse: coarse label \d+ .* outside 0..0"):
        load_dataset("cifar100-coarse", root=tmp_path)


def test_default_root_from_env(tmp_path, monkeypatch):
    _write_mnist(tmp_path, "MNIST")
    monkeypatch.setenv("TMU_DATA", str(tmp_path))
    assert len(load_dataset("mnist")) == 10


@pytest.mark.parametrize(
    "name, folder, first_file",
    [
        ("mnist", "MNIST/raw", "train-images-idx3-ubyte"),
        ("fashion-mnist", "FashionMNIST/raw", "train-images-idx3-ubyte"),
        ("cifar10", "cifar-10-batches-py", "data_batch_1"),
        ("cifar100", "cifar-100-python", "train"),
        ("cifar100-coarse", "cifar-100-python", "train"),
    ],
)
def test_missing_files_name_the_folder(tmp_path, name, folder, first_file):
    expected = re.escape(str(tmp_path / folder))
    with pytest.raises(
        DatasetError, match=rf"{re.escape(name)}: .*{expected}.*{first_file}"
    ) as info:
        load_dataset(name, root=tmp_path)
    assert "missing: " + first_file in str(info.value)
    # The message names the command that fetches exactly these files.
    assert str(info.value).endswith(f"`python -m tmu download {name} --data-root {tmp_path}`.")


def test_real_cifar_md5_check_reports_corrupted(tmp_path):
    _write_cifar10(
        tmp_path
    )  # files present but not the official ones: torchvision's md5 check fails
    with pytest.raises(DatasetError, match="missing: none, so some are corrupted"):
        load_dataset("cifar10", root=tmp_path)


def test_failed_download_is_a_dataset_error(tmp_path, monkeypatch):
    class Offline(tvd.MNIST):
        def download(self):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setitem(data._TV_CLASSES, "mnist", Offline)
    with pytest.raises(
        DatasetError,
        match=f"Error downloading.*download from .* into {re.escape(str(tmp_path))} failed",
    ):
        load_dataset("mnist", root=tmp_path, download=True)


# ----------------------------------------------------------------------------- imagefolder


def _save(path: Path, arr: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr)
    (img.convert(mode) if mode else img).save(path)


def test_imagefolder_grayscale_keeps_size_and_values(tmp_path):
    a = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10  # H=4, W=5
    _save(tmp_path / "dog" / "1.png", a)
    _save(tmp_path / "cat" / "2.png", 255 - a)
    _save(tmp_path / "cat" / "1.PNG", a)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")  # ignored, like torchvision
    (tmp_path / ".hidden").mkdir()  # hidden folders are not classes
    pool = load_dataset(f"imagefolder:{tmp_path}")
    assert pool.classes == ("cat", "dog") and pool.y.tolist() == [0, 0, 1]
    assert pool.x.shape == (3, 1, 4, 5) and pool.official_test is None
    assert torch.equal(pool.x[0, 0], torch.from_numpy(a).float() / 255)  # cat/1.PNG
    assert torch.equal(pool.x[1, 0], torch.from_numpy(255 - a).float() / 255)  # cat/2.png
    assert pool.name == f"imagefolder:{tmp_path}"


def test_imagefolder_binary_and_16bit_are_grayscale(tmp_path):
    _save(tmp_path / "a" / "x.png", np.array([[True, False], [False, True]]))
    _save(tmp_path / "b" / "y.png", np.array([[0, 65535], [13107, 65535]], dtype=np.uint16))
    pool = data.load_imagefolder(tmp_path)
    assert pool.x.shape == (2, 1, 2, 2)
    assert pool.x[0, 0].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert torch.allclose(pool.x[1, 0], torch.tensor([[0.0, 1.0], [0.2, 1.0]]))


def test_imagefolder_rgb_with_gray_mixed_in(tmp_path):
    rgb = np.zeros((3, 3, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 2] = 255, 51
    gray = np.full((3, 3), 102, dtype=np.uint8)
    _save(tmp_path / "red" / "r.png", rgb)
    _save(tmp_path / "red" / "p.png", rgb, mode="P")  # palette image -> RGB
    _save(tmp_path / "gray" / "g.png", gray)
    pool = load_dataset(f"imagefolder:{tmp_path}")
    assert pool.x.shape == (3, 3, 3, 3) and pool.in_channels == 3
    assert pool.classes == ("gray", "red") and pool.y.tolist() == [0, 1, 1]
    assert torch.allclose(pool.x[0], torch.full((3, 3, 3), 0.4))  # gray copied to R, G, B
    assert pool.x[1, :, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.2])


def test_imagefolder_mixed_sizes_resize_to_32(tmp_path):
    _save(tmp_path / "a" / "small.png", np.full((8, 10), 51, dtype=np.uint8))
    _save(tmp_path / "b" / "big.png", np.full((64, 40), 204, dtype=np.uint8))
    pool = load_dataset(f"imagefolder:{tmp_path}")
    assert pool.x.shape == (2, 1, 32, 32)
    # constant images stay constant
    assert torch.allclose(pool.x[0], torch.full((1, 32, 32), 0.2), atol=1e-6)
    assert torch.allclose(pool.x[1], torch.full((1, 32, 32), 0.8), atol=1e-6)


def test_imagefolder_missing_path(tmp_path):
    with pytest.raises(
        DatasetError, match=f"folder not found: {re.escape(str(tmp_path / 'nope'))}"
    ):
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")


def test_imagefolder_no_class_folders(tmp_path):
    _save(tmp_path / "loose.png", np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(DatasetError, match=f"no class sub-folders in {re.escape(str(tmp_path))}"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_imagefolder_single_class(tmp_path):
    _save(tmp_path / "only" / "a.png", np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(DatasetError, match="at least 2 classes, found 1 \\('only'\\)"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_imagefolder_empty_class_folder(tmp_path):
    _save(tmp_path / "full" / "a.png", np.zeros((2, 2), dtype=np.uint8))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    empty = re.escape(str(tmp_path / "empty"))
    with pytest.raises(DatasetError, match=f"class folder {empty} has no images"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_imagefolder_class_of_unreadable_images_only_names_the_folder_and_file(tmp_path):
    _save(tmp_path / "a" / "ok.png", np.zeros((2, 2), dtype=np.uint8))
    _save(tmp_path / "a" / "ok2.png", np.zeros((2, 2), dtype=np.uint8))
    bad = tmp_path / "b" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"definitely not a png")
    folder = re.escape(str(tmp_path / "b"))
    with pytest.raises(
        DatasetError,
        match=rf"class folder {folder} has no images .*1 unreadable: {re.escape(str(bad))}",
    ):
        load_dataset(f"imagefolder:{tmp_path}")


def _truncated_png(path: Path) -> None:
    _save(path, np.random.default_rng(0).integers(0, 255, (16, 16), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:60])


def test_imagefolder_skips_unreadable_files_with_a_warning(tmp_path, caplog):
    _save(tmp_path / "a" / "ok.png", np.zeros((2, 2), dtype=np.uint8))
    _save(tmp_path / "b" / "ok.png", np.full((2, 2), 255, dtype=np.uint8))
    (tmp_path / "a" / "text.png").write_text("a text file named like an image")
    (tmp_path / "b" / "_macos_fork.png").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 80)
    _truncated_png(tmp_path / "b" / "truncated.png")
    with caplog.at_level("WARNING", logger="tmu.data"):
        pool = data.load_imagefolder(tmp_path)
    assert len(pool) == 2 and pool.y.tolist() == [0, 1]
    skipped = [r.getMessage() for r in caplog.records]
    for name in ("text.png", "_macos_fork.png", "truncated.png"):
        assert any(f"skipped unreadable image {tmp_path}" in m and name in m for m in skipped)
    assert f"skipped 3 file(s) or folder(s) in {tmp_path}" in skipped[-1]


def test_imagefolder_ignores_hidden_files_and_folders(tmp_path, caplog):
    _save(tmp_path / "a" / "ok.png", np.zeros((2, 2), dtype=np.uint8))
    _save(tmp_path / "b" / "ok.png", np.zeros((2, 2), dtype=np.uint8))
    (tmp_path / "a" / "._ok.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS fork
    (tmp_path / "b" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    _save(tmp_path / "b" / ".cache" / "thumb.png", np.zeros((2, 2), dtype=np.uint8))
    _save(tmp_path / "__MACOSX" / "a" / "._ok.png", np.zeros((2, 2), dtype=np.uint8))
    with caplog.at_level("WARNING", logger="tmu.data"):
        pool = data.load_imagefolder(tmp_path)
    assert pool.classes == ("a", "b") and len(pool) == 2
    assert caplog.records == []  # ignored silently: they are no one's images


def test_imagefolder_does_not_follow_links_outside_the_folder(tmp_path, caplog):
    root, outside = tmp_path / "root", tmp_path / "outside"
    _save(root / "a" / "ok.png", np.zeros((2, 2), dtype=np.uint8))
    _save(root / "b" / "ok.png", np.zeros((2, 2), dtype=np.uint8))
    _save(outside / "secret" / "s.png", np.zeros((2, 2), dtype=np.uint8))
    _save(outside / "s.png", np.zeros((2, 2), dtype=np.uint8))
    (root / "secret").symlink_to(outside / "secret")  # a linked class folder: skipped
    (root / "loop").symlink_to(root)  # the folder itself: skipped
    (root / "a" / "s.png").symlink_to(outside / "s.png")  # a linked file: skipped
    (root / "a" / "sub").symlink_to(outside)  # a linked sub-folder: not descended into
    (root / "b" / "same.png").symlink_to(root / "b" / "ok.png")  # inside the root: followed
    with caplog.at_level("WARNING", logger="tmu.data"):
        pool = data.load_imagefolder(root)
    assert pool.classes == ("a", "b") and pool.y.tolist() == [0, 1, 1]
    text = "\n".join(r.getMessage() for r in caplog.records)
    for link in ("secret", "loop", "a/s.png", "a/sub"):
        assert f"{root / link}: a symbolic link" in text
    assert f"a symbolic link to {outside / 's.png'}, outside" in text
    assert "skipped 4 file(s) or folder(s)" in text


def test_imagefolder_only_linked_classes_is_one_class(tmp_path):
    _save(tmp_path / "root" / "a" / "ok.png", np.zeros((2, 2), dtype=np.uint8))
    _save(tmp_path / "outside" / "b" / "ok.png", np.zeros((2, 2), dtype=np.uint8))
    (tmp_path / "root" / "b").symlink_to(tmp_path / "outside" / "b")
    with pytest.raises(DatasetError, match=r"need at least 2 classes, found 1 \('a'\)"):
        data.load_imagefolder(tmp_path / "root")


def test_imagefolder_digit_folders_are_class_names_sorted_as_text(tmp_path):
    for i, name in enumerate(["2", "10", "1"]):
        _save(tmp_path / name / "x.png", np.full((2, 2), i, dtype=np.uint8))
    pool = data.load_imagefolder(tmp_path)
    # like torchvision's ImageFolder: names sorted as text, class id = index in that order
    assert pool.classes == ("1", "10", "2")
    assert pool.y.tolist() == [0, 1, 2]
    assert (pool.x[:, 0, 0, 0] * 255).round().tolist() == [2, 1, 0]  # folder "1" drew value 2


def test_imagefolder_huge_image_names_the_file(tmp_path, monkeypatch):
    _save(tmp_path / "a" / "ok.png", np.zeros((2, 2), dtype=np.uint8))
    big = tmp_path / "b" / "big.png"
    big.parent.mkdir()
    Image.new("L", (6000, 6000)).save(big)  # 36 M pixels, a few kB of PNG
    message = rf"image {re.escape(str(big))} is 6000 x 6000 = 36,000,000 pixels, over the limit"
    with pytest.raises(DatasetError, match=message + r" of 33,554,432 .*TMU_MAX_IMAGE_PIXELS"):
        load_dataset(f"imagefolder:{tmp_path}")
    small = tmp_path / "b" / "big.png"
    _save(small, np.zeros((4, 4), dtype=np.uint8))
    monkeypatch.setenv("TMU_MAX_IMAGE_PIXELS", "15")  # configurable
    with pytest.raises(DatasetError, match=r"b/big.png is 4 x 4 = 16 pixels, over the limit of 15"):
        load_dataset(f"imagefolder:{tmp_path}")
    monkeypatch.setenv("TMU_MAX_IMAGE_PIXELS", "16")
    assert len(load_dataset(f"imagefolder:{tmp_path}")) == 2
    with pytest.raises(DatasetError, match="over the limit of 4"):
        data.load_imagefolder(tmp_path, max_pixels=4)
    monkeypatch.setenv("TMU_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(DatasetError, match="TMU_MAX_IMAGE_PIXELS='lots' must be a positive"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_imagefolder_pillow_decompression_bomb_is_a_dataset_error(tmp_path, monkeypatch):
    _save(tmp_path / "a" / "ok.png", np.zeros((2, 2), dtype=np.uint8))
    _save(tmp_path / "b" / "bomb.png", np.zeros((10, 10), dtype=np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)  # 100 > 2 x 40: Pillow refuses to open it
    with pytest.raises(DatasetError, match=r"image .*bomb.png is too large to decode safely"):
        data.load_imagefolder(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60)  # 100 > 60: Pillow only warns; ours decides
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # none escapes to the user
        assert len(data.load_imagefolder(tmp_path)) == 2


def test_imagefolder_every_image_mode_loads(tmp_path):
    g = np.array([[0, 51], [102, 255]], dtype=np.uint8)
    rgb = np.stack([g, 255 - g, np.full_like(g, 51)], axis=-1)
    _save(tmp_path / "gray" / "l.png", g)  # L
    _save(tmp_path / "gray" / "la.png", np.stack([g, np.full_like(g, 7)], -1), mode="LA")
    _save(tmp_path / "gray" / "i16.png", g.astype(np.uint16) * 257)  # 16-bit: same values
    _save(tmp_path / "gray" / "one.png", g > 100)  # 1-bit
    _save(tmp_path / "rgb" / "rgb.png", rgb)
    _save(tmp_path / "rgb" / "rgba.png", np.dstack([rgb, np.full_like(g, 9)]))  # alpha dropped
    _save(tmp_path / "rgb" / "p.png", rgb, mode="P")
    _save(tmp_path / "rgb" / "cmyk.jpg", rgb, mode="CMYK")
    pool = data.load_imagefolder(tmp_path)
    assert pool.x.shape == (8, 3, 2, 2) and pool.y.tolist() == [0] * 4 + [1] * 4
    gray = torch.from_numpy(g).float() / 255
    for i in range(3):  # i16.png, l.png, la.png: gray copied to R, G, B
        assert torch.allclose(pool.x[i], gray.expand(3, 2, 2), atol=1e-6), i
    assert pool.x[3, 0].tolist() == [[0.0, 0.0], [1.0, 1.0]]  # one.png
    want = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    for i in (5, 6, 7):  # rgb/ sorted: cmyk.jpg, p.png, rgb.png, rgba.png
        assert torch.allclose(pool.x[i], want, atol=1 / 255), i
    assert 0 <= pool.x[4].min() and pool.x[4].max() <= 1  # CMYK: converted, no colour profile


def test_imagefolder_32_bit_images_are_skipped_as_unreadable(tmp_path, caplog):
    _save(tmp_path / "a" / "ok.png", np.zeros((2, 2), dtype=np.uint8))
    _save(tmp_path / "b" / "ok.png", np.zeros((2, 2), dtype=np.uint8))
    Image.fromarray(np.zeros((2, 2), dtype=np.float32)).save(tmp_path / "b" / "f.tif")  # mode F
    with caplog.at_level("WARNING", logger="tmu.data"):
        assert len(data.load_imagefolder(tmp_path)) == 2
    assert "f.tif: mode F (32-bit) is not supported" in caplog.text


def test_imagefolder_without_path():
    with pytest.raises(DatasetError, match="no path given"):
        load_dataset("imagefolder:")


# ----------------------------------------------------------------------------- registry


def test_unknown_name_lists_valid_names():
    with pytest.raises(
        DatasetError,
        match="unknown dataset 'imagenet'.*mnist5k, digits, mnist, "
        "fashion-mnist, cifar10, cifar100, cifar100-coarse, imagefolder:PATH",
    ):
        load_dataset("imagenet")


@pytest.mark.parametrize("name", [*DATASETS, "imagefolder:/no/such/folder"])
def test_check_dataset_name_accepts_registry_names_without_reading_files(name):
    assert check_dataset_name(name) is None  # an imagefolder path is checked when loaded


@pytest.mark.parametrize(
    "name,message",
    [
        ("imagenet", "unknown dataset 'imagenet'; valid names: mnist5k"),
        ("MNIST", "unknown dataset 'MNIST'"),
        ("imagefolder:", "no path given"),
    ],
)
def test_check_dataset_name_rejects(name, message):
    with pytest.raises(DatasetError, match=re.escape(message)):
        check_dataset_name(name)


def test_download_command_reports_the_dataset_once_its_files_are_there(tmp_path, capsys):
    from tmu import cli

    _write_mnist(tmp_path, "MNIST")  # present: torchvision fetches nothing
    assert cli.main(["download", "mnist", "--data-root", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "mnist: 10 images, 10 classes, ready\n"
    assert cli.main(["download", "imagenet", "--data-root", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: unknown dataset 'imagenet'")


def test_dataset_names_and_registry():
    assert dataset_names() == [*DATASETS, "imagefolder:PATH"]
    assert {
        "mnist5k",
        "digits",
        "mnist",
        "fashion-mnist",
        "cifar10",
        "cifar100",
        "cifar100-coarse",
    } == set(DATASETS)


def test_pool_rejects_bad_arrays():
    x = torch.zeros(3, 1, 2, 2)
    with pytest.raises(DatasetError, match="float32"):
        Pool("bad", x.double(), torch.zeros(3, dtype=torch.int64), ("a",))
    with pytest.raises(DatasetError, match="int64"):
        Pool("bad", x, torch.zeros(2, dtype=torch.int64), ("a",))


def test_a_warm_worker_loads_a_dataset_once(monkeypatch):
    from tmu import data

    monkeypatch.setattr(data, "_keep_warm", False)
    monkeypatch.setattr(data, "_warm", {})
    assert data.load_dataset("digits") is not data.load_dataset("digits")  # default: re-read
    data.keep_datasets_warm()
    first = data.load_dataset("digits")
    assert data.load_dataset("digits") is first and len(first) == 1797
