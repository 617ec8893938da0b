"""Datasets as the pages show them: the pool, its D / H / T split, class counts, images."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from tmu.config import RunConfig
from tmu.data import (
    FINGERPRINT_SECONDS,
    IMAGEFOLDER_PREFIX,
    IMPORTED,
    PoolShape,
    check_dataset_name,
    content_fingerprint,
    dataset_names,
    default_data_root,
    imagefolder_path,
    load_dataset,
    read_imagefolder,
)
from tmu.models import MODELS, RECIPES
from tmu.splits import split_pool
from tmu.unlearn import METHODS


def content(name: str) -> str:
    """What dataset `name` holds now (tmu.data.content_fingerprint: "" for a registry dataset),
    part of every cache key here: an imported dataset replaced under its name is read afresh.
    Reused for FINGERPRINT_SECONDS while its folders are unchanged (asked on every rerun)."""
    return content_fingerprint(name, max_age=FINGERPRINT_SECONDS)


@dataclass(frozen=True, eq=False)
class ShownPool(PoolShape):
    """A dataset as the pages hold it: the labels, classes and official test split of its
    `tmu.data.Pool`, and its images as uint8 codes round(255 x value), exactly what the pages
    show (`to_uint8`) in a quarter of float32's memory. Training never reads it (jobs load
    their own Pool in their worker process)."""

    name: str
    x: torch.Tensor  # (N, C, H, W) uint8
    y: torch.Tensor  # (N,) int64
    classes: tuple[str, ...]
    official_test: np.ndarray | None = None


def pool(name: str) -> ShownPool:
    """The dataset's pool as the pages hold it (cached per process and content)."""
    return _pool(name, content(name))


@lru_cache(maxsize=2)
def _pool(name: str, fingerprint: str) -> ShownPool:
    """An image folder (an imported dataset) is decoded straight into uint8 codes, so the server
    never holds its float32 images: it costs the codes plus one image being decoded."""
    check_dataset_name(name)
    if name.startswith(IMAGEFOLDER_PREFIX):
        x, y, classes = read_imagefolder(imagefolder_path(name), dtype=torch.uint8)
        return ShownPool(name, x, torch.as_tensor(y, dtype=torch.int64), tuple(classes))
    p = load_dataset(name)
    return ShownPool(p.name, _codes(p.x), p.y, p.classes, p.official_test)


def _codes(x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """float32 images in [0, 1] as uint8 codes round(255 x value), a chunk at a time (no float
    copy of the whole pool)."""
    out = torch.empty(x.shape, dtype=torch.uint8)
    for s in range(0, len(x), chunk):
        out[s : s + chunk] = x[s : s + chunk].mul(255.0).round_().clamp_(0, 255)
    return out


def roles(name: str, seed: int, holdout: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(D, H, T) ids of dataset `name` under `seed` with the holdout fraction `holdout` and the
    default test fraction; the one split every page uses (the run itself draws the same one)."""
    return _roles(name, content(name), seed, holdout)


@lru_cache(maxsize=8)
def _roles(name: str, fingerprint: str, seed: int, holdout: float):
    p, test = pool(name), RunConfig().split.test
    return split_pool(len(p), holdout, test, seed, p.official_test)


def data_root() -> Path:
    """The data root, absolute ($TMU_DATA, else ./data of the directory the app started in)."""
    return default_data_root().resolve()


def imported_datasets() -> list[str]:
    """`imagefolder:ABSOLUTE_PATH` of every dataset imported under the data root, by name."""
    base = data_root() / IMPORTED
    if not base.is_dir():
        return []
    return [
        f"{IMAGEFOLDER_PREFIX}{p}"
        for p in sorted(base.iterdir())
        if p.is_dir() and not p.name.startswith(".")
    ]


def dataset_label(name: str) -> str:
    """How the dataset picker shows a dataset: an imported one by its name."""
    if name.startswith(IMAGEFOLDER_PREFIX):
        return f"{Path(name[len(IMAGEFOLDER_PREFIX) :]).name} (your images)"
    return name


def datasets() -> list[str]:
    """The registry's datasets, then those imported under the data root (never a folder path
    typed in the browser)."""
    return [n for n in dataset_names() if not n.startswith("imagefolder")] + imported_datasets()


def models() -> list[str]:
    return sorted(MODELS)


RECIPE_HELP = {
    "standard": "the model's own recipe (weight decay: wrong labels are mostly not fitted)",
    "memorise": "no weight decay, 4x the epochs: the original fits every training label, wrong "
    "ones included, as long research runs do",
}
"""The training recipes (tmu.models.RECIPES) as the Data page explains them."""
assert set(RECIPE_HELP) == set(RECIPES)


def methods() -> dict[str, str]:
    """Method name -> one-line description, TMU first."""
    return {m: METHODS[m].description for m in sorted(METHODS, key=lambda m: (m != "tmu", m))}


@dataclass(frozen=True)
class DataInfo:
    classes: list[str]
    counts: np.ndarray
    sizes: dict[str, int]
    image_shape: tuple[int, ...]


def data_info(name: str, seed: int, holdout: float = 0.2) -> DataInfo:
    """Classes, per-class counts and D / H / T sizes for `seed` (and the holdout fraction)."""
    return _data_info(name, content(name), seed, holdout)


@lru_cache(maxsize=8)
def _data_info(name: str, fingerprint: str, seed: int, holdout: float) -> DataInfo:
    p = pool(name)
    train, hold, test = roles(name, seed, holdout)
    counts = np.bincount(p.y.numpy(), minlength=p.num_classes)
    sizes = {"D (train)": len(train), "H (holdout)": len(hold), "T (test)": len(test)}
    return DataInfo([str(c) for c in p.classes], counts, sizes, tuple(p.x.shape[1:]))


def to_uint8(img: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, 3) uint8 for display."""
    img = np.clip(np.asarray(img, dtype=np.float32), 0, 1)
    img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
    return (img * 255).round().astype(np.uint8)


def images(name: str, ids) -> list[np.ndarray]:
    """Display images (uint8, (H, W) or (H, W, 3)) of pool ids: the pool's codes as they are."""
    x = pool(name).x
    return [_display(x[int(i)].numpy()) for i in ids]


def _display(codes: np.ndarray) -> np.ndarray:
    """(C, H, W) uint8 codes -> (H, W) or (H, W, 3), the layout st.image and PIL take."""
    return codes[0] if codes.shape[0] == 1 else np.ascontiguousarray(codes.transpose(1, 2, 0))


def data_uri(img: np.ndarray, scale: int = 2) -> str:
    """A PNG data URI of a uint8 image (for st.dataframe's ImageColumn)."""
    im = Image.fromarray(img)
    im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def gallery(name: str, per_class: int = 8, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """(class name, montage of `per_class` random samples side by side, uint8) per class."""
    return _gallery(name, content(name), per_class, seed)


@lru_cache(maxsize=4)
def _gallery(name: str, fingerprint: str, per_class: int, seed: int) -> list:
    p, rng = pool(name), np.random.default_rng(seed)
    y = p.y.numpy()
    out = []
    for c, cname in enumerate(p.classes):
        members = np.flatnonzero(y == c)
        pick = (
            rng.choice(members, size=min(per_class, len(members)), replace=False)
            if len(members)
            else []
        )
        tiles = images(name, pick)
        if tiles:
            out.append((str(cname), np.concatenate([_framed(t) for t in tiles], axis=1)))
    return out


def _framed(tile: np.ndarray) -> np.ndarray:
    """A uint8 image with a 1-pixel white frame."""
    return np.pad(tile, [(1, 1), (1, 1)] + [(0, 0)] * (tile.ndim - 2), constant_values=255)


def thumbnail_table(
    name: str, seed: int, cls: int | None, page: int, per_page: int = 50, holdout: float = 0.2
) -> pd.DataFrame:
    """Training samples (optionally of one class), one page: id, class, thumbnail data URI."""
    p, (train, _, _) = pool(name), roles(name, seed, holdout)
    y = p.y.numpy()
    if cls is not None:
        train = train[y[train] == cls]
    part = train[page * per_page : (page + 1) * per_page]
    return pd.DataFrame(
        {
            "id": part,
            "class": [str(p.classes[c]) for c in y[part]],
            "image": [data_uri(im) for im in images(name, part)],
        }
    )
