"""`python -m tmu import-dataset FILE.zip --name NAME`: the user's images, as a zip of class
folders, become the dataset `imagefolder:NAME` under the data root (DATA_ROOT/imported/NAME).

A zip is untrusted input. Nothing is written outside the data root, and nothing at all unless the
whole archive passes: members with absolute paths or `..`, links, too many files, too many bytes
once expanded, an expansion ratio of a zip bomb, too many classes, or images over the pixel limit
are refused with a message naming the member and the limit (`ImportLimits`, each configurable).
Non-image files and hidden files (`__MACOSX/`, `._x.png`, `.DS_Store`) are skipped and counted.
The archive is unpacked into a temporary folder next to the destination, loaded once as an image
folder (which checks every image and the classes), and only then renamed into place; a name
that exists is never overwritten.
"""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from .data import (
    IMAGEFOLDER_MAX_PIXELS,
    IMAGEFOLDER_PREFIX,
    IMPORTED,
    DatasetError,
    Pool,
    default_data_root,
    _hidden,
    load_imagefolder,
)

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass(frozen=True)
class ImportLimits:
    """What one imported archive may hold."""

    max_files: int = 100_000  # image files
    max_bytes: int = 2 * 2**30  # all images, expanded
    max_ratio: float = 200.0  # expanded / compressed size of one member (zip bombs reach 1000s)
    max_classes: int = 1_000
    max_pixels: int = IMAGEFOLDER_MAX_PIXELS  # per image


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise DatasetError(
            f"dataset name {name!r} is not allowed; use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def _members(zf: zipfile.ZipFile, limits: ImportLimits) -> tuple[list[tuple], int]:
    """The image members as (info, relative path CLASS/.../FILE), and how many were skipped;
    raises DatasetError for a member or a total over a limit."""
    keep, skipped, total = [], 0, 0
    for info in zf.infolist():
        raw = info.filename
        path = PurePosixPath(raw)
        if raw.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", raw) or ".." in path.parts:
            raise DatasetError(f"zip member {raw!r} points outside the archive; refused")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DatasetError(f"zip member {raw!r} is a symbolic link; links are refused")
        if info.is_dir():
            continue
        if any(_hidden(p) for p in path.parts) or path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped += 1
            continue
        if info.file_size > 1 << 20 and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise DatasetError(
                f"zip member {raw!r} expands {info.file_size / max(info.compress_size, 1):.0f}x "
                f"(limit {limits.max_ratio:g}x): a zip bomb? refused"
            )
        total += info.file_size
        keep.append((info, path))
        if len(keep) > limits.max_files:
            raise DatasetError(f"the archive holds more than {limits.max_files} images (limit)")
        if total > limits.max_bytes:
            raise DatasetError(
                f"the archive's images expand to more than {limits.max_bytes} bytes (limit)"
            )
    if not keep:
        raise DatasetError("the archive holds no image (.png, .jpg, ...)")
    # One common top folder (zipping a folder) is not a class: CLASS/IMAGE below it.
    tops = {p.parts[0] for _, p in keep}
    if len(tops) == 1 and all(len(p.parts) >= 3 for _, p in keep):
        keep = [(i, PurePosixPath(*p.parts[1:])) for i, p in keep]
    flat = [str(p) for _, p in keep if len(p.parts) < 2]
    if flat:
        raise DatasetError(
            f"image {flat[0]!r} is not in a class folder; the zip must hold CLASS/IMAGE files"
        )
    classes = {p.parts[0] for _, p in keep}
    if len(classes) > limits.max_classes:
        raise DatasetError(f"the archive holds {len(classes)} classes (limit {limits.max_classes})")
    return keep, skipped


def _extract(zf: zipfile.ZipFile, members: list[tuple], dest: Path) -> None:
    """Write each member under `dest`, reading no more bytes than its header declares."""
    for info, path in members:
        target = dest.joinpath(*path.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as out:
            left = info.file_size
            while block := src.read(min(1 << 20, left + 1)):
                left -= len(block)
                if left < 0:
                    raise DatasetError(f"zip member {info.filename!r} is larger than it declares")
                out.write(block)


@dataclass(frozen=True)
class Imported:
    name: str
    path: Path
    pool: Pool
    skipped: int

    @property
    def dataset(self) -> str:
        """The --dataset value that loads it."""
        return f"{IMAGEFOLDER_PREFIX}{self.name}"


def import_dataset(
    archive: str | Path,
    name: str,
    data_root: str | Path | None = None,
    limits: ImportLimits | None = None,
) -> Imported:
    """Unpack `archive` (a zip of CLASS/IMAGE files) as DATA_ROOT/imported/NAME, checked whole
    before it appears there; returns the loaded pool."""
    check_name(name)
    limits = limits or ImportLimits()
    base = (Path(data_root) if data_root is not None else default_data_root()) / IMPORTED
    dest = base / name
    if dest.exists():
        raise DatasetError(
            f"a dataset named {name!r} already exists at {dest}; choose another name or delete it"
        )
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise DatasetError(f"{str(archive)!r} is not a readable zip file ({err})") from None
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=base, prefix=f".{name}."))
    try:
        with zf:
            members, skipped = _members(zf, limits)
            try:
                _extract(zf, members, tmp)
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise DatasetError(f"{str(archive)!r} is damaged: {err}") from None
        try:
            pool = load_imagefolder(tmp, max_pixels=limits.max_pixels)
        except DatasetError as err:  # name the member, not the temporary folder
            where = f"{Path(archive).name}:"
            raise DatasetError(
                str(err).replace(f"{tmp}/", where).replace(str(tmp), where.rstrip(":"))
            ) from None
        if pool.num_classes < 2:
            raise DatasetError(f"the archive holds {pool.num_classes} class; unlearning needs 2+")
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Imported(name, dest, replace(pool, name=f"{IMAGEFOLDER_PREFIX}{dest}"), skipped)
