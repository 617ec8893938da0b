"""`python -m tmu import-dataset FILE.zip --name NAME`: the user's images, as a zip of class
folders, become the dataset `imagefolder:NAME` under the data root (DATA_ROOT/imported/NAME).

A zip is untrusted input. Nothing is written outside the data root, and nothing at all unless the
whole archive passes: members with absolute paths or `..`, links, too many files, too many bytes
once expanded, an expansion ratio of a zip bomb, too many classes, images over the pixel limit,
or images whose headers add up to a pool over the decoded-bytes limit (checked before any pixel
is decoded) are refused with a message naming the member and the limit (`ImportLimits`, each
configurable). So are encrypted members, compression methods Python cannot read (deflate64) and
damaged compressed data, each naming the member.
Non-image files and hidden files (`__MACOSX/`, `._x.png`, `.DS_Store`) are skipped and counted.
The archive is unpacked into a temporary folder next to the destination, loaded once as an image
folder (which checks every image and the classes), and only then renamed into place; a name
that exists is never overwritten, and of two imports of one name at once the second is refused
with its temporary folder removed. Running out of memory while decoding (a process limited with
`--memory-mb`, as the dashboard's import is) is a DatasetError too, not a crash.
"""

from __future__ import annotations

import errno
import lzma
import re
import resource
import shutil
import stat
import tempfile
import zipfile
import zlib
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
    max_pool_bytes: int = 2**30  # all images once decoded (float32, after the size policy)


READABLE = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}
"""The compression methods Python's zipfile decodes (deflate64, method 9, is not one of them)."""
DAMAGED = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, RuntimeError)
"""What reading a damaged member raises (a bad CRC, a corrupt deflate stream, a cut archive)."""


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
        _check_readable(info)
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


def _check_readable(info: zipfile.ZipInfo) -> None:
    """Refuse, up front, a member that would fail only halfway through the extraction: an
    encrypted one (zipfile would ask for a password) or one compressed with a method zipfile
    cannot decode (deflate64 from Windows Explorer, ...)."""
    if info.flag_bits & 0x1:
        raise DatasetError(
            f"zip member {info.filename!r} is encrypted; zip the images without a password"
        )
    if info.compress_type not in READABLE:
        raise DatasetError(
            f"zip member {info.filename!r} uses compression method {info.compress_type}, which "
            f"cannot be read (only {', '.join(READABLE.values())}); zip it again with a plain "
            "zip tool"
        )


def _extract(zf: zipfile.ZipFile, members: list[tuple], dest: Path) -> None:
    """Write each member under `dest`, reading no more bytes than its header declares; a member
    whose data does not decode is a DatasetError naming it."""
    for info, path in members:
        target = dest.joinpath(*path.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            _copy_member(zf, info, target)
        except DatasetError:
            raise
        except DAMAGED as err:
            raise DatasetError(
                f"zip member {info.filename!r} is damaged and cannot be unpacked "
                f"({type(err).__name__}: {err})"
            ) from None


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    with zf.open(info) as src, open(target, "wb") as out:
        left = info.file_size
        while block := src.read(min(1 << 20, left + 1)):
            left -= len(block)
            if left < 0:
                raise DatasetError(f"zip member {info.filename!r} is larger than it declares")
            out.write(block)


def _out_of_memory(err: BaseException) -> bool:
    """MemoryError, or torch's allocator failing ("can't allocate memory") under a limit."""
    return isinstance(err, MemoryError) or (
        isinstance(err, RuntimeError) and "allocate" in str(err).lower()
    )


def limit_memory(megabytes: int) -> None:
    """Let this process use at most `megabytes` MB of address space beyond what it holds now
    (the interpreter, torch and their libraries): past it, an allocation fails with MemoryError
    instead of growing until the machine's out-of-memory killer picks a victim. Linux only
    (elsewhere a no-op); the dashboard runs each upload's import this way."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return
    vm = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("VmSize:")), None)
    if vm is None:
        return
    cap = int(vm) * 1024 + int(megabytes) * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard < 0 else min(cap, hard), hard))


def _no_memory(archive: str | Path) -> DatasetError:
    return DatasetError(
        f"the archive {Path(archive).name!r} needs more memory than this import may use to "
        "decode its images; use fewer or smaller images"
    )


def _move(tmp: Path, dest: Path) -> None:
    """Rename the checked folder into place; when another import of the same name got there
    first (rename fails: the destination is a non-empty folder), refuse by name."""
    try:
        tmp.rename(dest)
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST) and not dest.exists():
            raise
        raise DatasetError(
            f"a dataset named {dest.name!r} was just imported by someone else; choose another name"
        ) from None


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
            _extract(zf, members, tmp)
        try:
            pool = load_imagefolder(tmp, limits.max_pixels, limits.max_pool_bytes)
        except DatasetError as err:  # name the member, not the temporary folder
            where = f"{Path(archive).name}:"
            raise DatasetError(
                str(err).replace(f"{tmp}/", where).replace(str(tmp), where.rstrip(":"))
            ) from None
        except (MemoryError, RuntimeError) as err:
            if not _out_of_memory(err):
                raise
            raise _no_memory(archive) from None
        if pool.num_classes < 2:
            raise DatasetError(f"the archive holds {pool.num_classes} class; unlearning needs 2+")
        _move(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Imported(name, dest, replace(pool, name=f"{IMAGEFOLDER_PREFIX}{dest}"), skipped)
