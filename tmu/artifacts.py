"""The run store: every trained model and result under one root, keyed by a hash of the config
that produced it, written atomically (temp file + rename) so a crash never leaves a half-written
artifact, and reused when the same config is asked for again.

Layout: ROOT/models/KEY.pt (state_dict), ROOT/models/KEY.json (metadata: config, seconds),
ROOT/arrays/KEY.npz, ROOT/results/KEY.json, ROOT/locks/KEY.lock (see `Store.lock`). ROOT defaults
to $TMU_HOME or ./runs.

Several processes may share one store (the dashboard's job workers, a CLI run, a Ray cluster on
one disk): each write of a key holds that key's file lock, and an entry that cannot be read back
(a truncated or empty file from a copy, a full disk, a crash on a filesystem that lost the data)
is logged, discarded and computed again rather than served. A read that succeeds sets the file's
modification time (its last use: `tmu.budget` evicts the least recently used entries first).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

import numpy as np
import torch

logger = logging.getLogger(__name__)


def default_root() -> Path:
    return Path(os.environ.get("TMU_HOME", "runs"))


CACHE_VERSION = "3"
"""Part of every key: bump it (or tmu.__version__) with a change that alters what a stored model
or result would be, so that stores written by older code are not served as current."""


def config_key(*parts: Any) -> str:
    """A stable 16-hex-digit hash of JSON-serialisable parts (numpy arrays hashed by content),
    salted with the package and cache versions."""
    from . import __version__

    h = hashlib.sha256(f"tmu {__version__} cache {CACHE_VERSION}|".encode())
    for part in parts:
        if isinstance(part, np.ndarray) and part.dtype.kind in "biu":  # ids and masks
            h.update(np.ascontiguousarray(part, dtype=np.int64).tobytes())
        elif isinstance(part, np.ndarray):  # casting floats to int64 would merge 0.1 and 0.2
            h.update(
                f"{part.dtype.str}{part.shape}".encode() + np.ascontiguousarray(part).tobytes()
            )
        else:
            h.update(json.dumps(part, sort_keys=True, default=_json_default).encode())
        h.update(b"|")
    return h.hexdigest()[:16]


def _json_default(obj: Any) -> Any:
    # str() of a large numpy array elides its middle ("..."), so two arrays would share a key.
    return obj.tolist() if isinstance(obj, np.ndarray) else str(obj)


class StoreWriteError(OSError):
    """A file of the store or of a run folder could not be written (a full disk, no permission).
    The message names the file and the cause; an OSError, so existing handlers still catch it."""


def _write_error(path: Path, err: OSError) -> StoreWriteError:
    reason = err.strerror or str(err)
    if err.errno == errno.ENOSPC:
        reason += " (the disk is full: free some space, or point TMU_HOME at another disk)"
    new = StoreWriteError(f"cannot write {path}: {reason}")
    new.errno = err.errno
    return new


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable; some filesystems refuse to fsync a folder: ignored."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename.

    The data is fsync'd before the rename and the folder after it: without that, a power loss
    soon after the rename can leave an empty `path` on ext4/xfs (the rename reached the disk, the
    data not). On failure the temporary file is removed and the old `path`, if any, is kept; an
    OSError (ENOSPC...) comes back as a StoreWriteError naming `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _write_error(path, err) from err
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _write_error(path, err) from err
        raise
    _fsync_dir(path.parent)


def write_json(path: Path, obj: Any) -> None:
    atomic_write(Path(path), json.dumps(obj, indent=2, allow_nan=True).encode())


def save_state_dict(path: Path, model: torch.nn.Module) -> None:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    atomic_write(Path(path), buf.getvalue())


def load_state_dict(path: Path | IO[bytes]) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


Signature = tuple[int, int, int]
"""(inode, mtime_ns, size) of a file: whether the file at a path is still the one that was read."""


def signature(info: os.stat_result) -> Signature:
    return info.st_ino, info.st_mtime_ns, info.st_size


def touch(path: Path) -> None:
    """Record a use of `path` (its modification time: atime is often off or lazy); a store on a
    read-only disk is left as it is."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _parse_json(fh: IO[bytes]) -> Any:
    return json.loads(fh.read())


def _parse_meta(fh: IO[bytes]) -> dict:
    meta = json.loads(fh.read())
    if not isinstance(meta, dict):
        raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
    return meta


def _parse_state(fh: IO[bytes]) -> dict[str, torch.Tensor]:
    state = load_state_dict(fh)
    if not isinstance(state, dict):
        raise ValueError(f"expected a state_dict, got {type(state).__name__}")
    return state


def _parse_arrays(fh: IO[bytes]) -> dict[str, np.ndarray]:
    with np.load(fh, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


EVICTED = ".evicted."
"""The prefix of a job folder being deleted by an eviction (`tmu.budget`), moved out of jobs/
first so that no one lists it half-deleted; a crash mid-way leaves it to `Store.clean`."""

READ_TRIES = 3
"""Reads of one file before giving up, when a writer keeps replacing it between a failed read and
its discard (each replacement is a fresh file, worth reading)."""


def remove_stale(paths: Iterable[Path], max_age_days: float) -> list[Path]:
    """Remove those of `paths` (files or folders that crashed writers left) whose newest file is
    older than `max_age_days`: a younger one may be a write or an import in progress in another
    process. Links are never followed nor removed. Returns the removed paths; one that cannot be
    removed is logged and skipped."""
    cutoff = time.time() - max_age_days * 86400
    removed = []
    for path in paths:
        try:
            if path.is_symlink() or _newest(path) >= cutoff:
                continue
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        except OSError as err:  # removed by another process meanwhile, no permission
            logger.warning("cannot remove the leftover %s: %s", path, err)
            continue
        removed.append(path)
    return removed


def _newest(path: Path) -> float:
    """The newest modification time of `path` and, for a folder, of anything inside it."""
    times = [path.lstat().st_mtime]
    if path.is_dir():
        times += [p.lstat().st_mtime for p in path.rglob("*")]
    return max(times)


MKDTEMP = re.compile(r"\.[A-Za-z0-9][A-Za-z0-9_.-]*\.[a-z0-9_]{8}")
"""The folders `tempfile.mkdtemp(prefix=".NAME.")` makes: an import of dataset NAME in progress
(tmu.importer) or an upload in transit (`.upload.`). A dataset's name never starts with a dot."""


def clean_imported(imported: Path, max_age_days: float = 1.0) -> list[Path]:
    """Remove the temporary folders that crashed imports and uploads left in `imported`
    (DATA_ROOT/imported), older than `max_age_days`; datasets and anything else are kept."""
    folder = Path(imported)
    try:
        found = sorted(folder.glob(".*")) if folder.is_dir() else []
    except OSError as err:  # no permission
        logger.warning("cannot look for leftover imports in %s: %s", folder, err)
        return []
    removed = remove_stale(
        [p for p in found if MKDTEMP.fullmatch(p.name) and p.is_dir()], max_age_days
    )
    if removed:
        logger.info("removed %d leftover import folder(s) from %s", len(removed), folder)
    return removed


# Keys whose lock this thread holds (root, key) -> depth: `Store.lock` is re-entrant, as
# flock() on a second descriptor of the same file would wait for the first forever.
_held = threading.local()


SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "store"
"""Models that ship with the repository (`tmu.demo`: the default demo's original, gold and twin
models), each listed in SHIPPED/manifest.json under its store key with the sha256 of its file."""


@functools.lru_cache(maxsize=4)
def shipped_manifest(folder: Path) -> dict[str, dict]:
    """KEY -> {"label", "sha256", "meta"} of the models shipped in `folder` ({} without any)."""
    try:
        return json.loads((folder / "manifest.json").read_text())["models"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


class Store:
    """Content-addressed storage of models, arrays and JSON results.

    A model that is not stored but ships with the repository (`shipped`, by default SHIPPED) is
    copied in when asked for, if its file's sha256 is the manifest's: the default demo starts
    without training its costly models, and a shipped file that was changed is never served."""

    def __init__(self, root: str | Path | None = None, shipped: Path | None = SHIPPED):
        self.root = Path(root) if root is not None else default_root()
        self.shipped = shipped

    def _unpack_shipped(self, key: str) -> bool:
        """Copy the shipped model `key` into this store; False when none ships or its file does
        not match the manifest's hash (logged)."""
        entry = shipped_manifest(self.shipped).get(key) if self.shipped else None
        if entry is None:
            return False
        src = self.shipped / f"{key}.pt"
        try:
            data = src.read_bytes()
        except OSError as err:
            logger.warning("shipped model %s cannot be read (%s): training it instead", src, err)
            return False
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            logger.warning("shipped model %s does not match its manifest: training it instead", src)
            return False
        atomic_write(self._path("models", key, "pt"), data)
        write_json(self._path("models", key, "json"), {**entry["meta"], "shipped": True})
        logger.info("using the shipped %s model (key %s)", entry["label"], key)
        return True

    def _path(self, kind: str, key: str, ext: str) -> Path:
        return self.root / kind / f"{key}.{ext}"

    @contextlib.contextmanager
    def lock(self, key: str, *, blocking: bool = True) -> Iterator[bool]:
        """Hold `key`'s lock, ROOT/locks/KEY.lock, exclusively (fcntl.flock, so it also holds
        across processes, and the kernel releases it when a process dies). Re-entrant within a
        thread. Lock files are left in place: deleting one while another process waits on it
        would let a third take a different lock on a new file of the same name.

        Yields whether the lock is held: always True when `blocking`; without, False at once
        when another holder has it (eviction skips a key that is being written or trained)."""
        ident = (str(self.root.resolve()), key)
        depth = getattr(_held, "depth", None)
        if depth is None:
            depth = _held.depth = {}
        if depth.get(ident):
            depth[ident] += 1
            try:
                yield True
            finally:
                depth[ident] -= 1
            return
        path = self._path("locks", key, "lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise _write_error(path, err) from err
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:  # held elsewhere, and we may not wait
                yield False
                return
            except OSError as err:  # ENOLCK/EOPNOTSUPP: a filesystem without locks (some NFS)
                logger.warning(
                    "cannot lock %s (%s): writing without the lock; the writes stay atomic, two "
                    "processes may compute the same artifact twice",
                    path,
                    err,
                )
            depth[ident] = 1
            try:
                yield True
            finally:
                depth.pop(ident, None)
        finally:
            os.close(fd)  # releases the flock

    def _discard(self, file: Path, err: BaseException, *others: Path) -> None:
        """Log that `file` cannot be read and delete it (and `others`, the rest of its entry), so
        that the entry is computed again instead of being served or failing every run."""
        logger.warning(
            "ignoring unreadable store file %s (%s: %s); it will be computed again",
            file,
            type(err).__name__,
            err,
        )
        for path in (file, *others):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)

    def _read(self, key: str, path: Path, parse: Callable[[IO[bytes]], Any], *others: Path) -> Any:
        """`parse` of the file `path` of entry `key`, or None when it is missing or unreadable.

        An unreadable file is discarded with `others` (the rest of its entry) under the key's
        lock, and only while it is still the file that failed: a reader holds no lock while it
        reads, so a writer may have renamed a fresh, good file into place meanwhile; that one
        is read instead. A file read whole has its use recorded (`touch`)."""
        for _ in range(READ_TRIES):
            try:
                fh = open(path, "rb")
            except FileNotFoundError:
                return None
            except OSError as err:  # no permission, a folder: not ours to judge or delete
                logger.warning("cannot read store file %s: %s", path, err)
                return None
            with fh:
                read = signature(os.fstat(fh.fileno()))
                try:
                    value = parse(fh)
                except MemoryError:  # this process's trouble, not the file's
                    raise
                except Exception as err:  # truncated zip, EOFError, UnpicklingError, JSON...
                    failure = err
                else:
                    touch(path)
                    return value
            if self._discard_if_unchanged(key, path, read, failure, *others):
                return None
        return None

    def _discard_if_unchanged(
        self, key: str, path: Path, read: Signature, err: BaseException, *others: Path
    ) -> bool:
        """Under `key`'s lock, discard `path` (and `others`) if it is still the file whose
        signature was `read`; True when it is gone, False when another file took its place."""
        with self.lock(key):
            try:
                now = signature(path.stat())
            except FileNotFoundError:  # another reader discarded it
                return True
            if now != read:
                return False
            self._discard(path, err, *others)
            return True

    def _read_model(self, key: str) -> tuple[dict[str, torch.Tensor], dict] | None:
        """The stored state_dict and metadata of `key`, or None when either file is missing or
        unreadable (then discarded, see `_read`). The metadata is read after the weights: a
        writer writes it last, so it is never older than the weights it comes with."""
        pt, meta_path = self._path("models", key, "pt"), self._path("models", key, "json")
        if not (pt.is_file() and meta_path.is_file()) and not self._unpack_shipped(key):
            return None
        state = self._read(key, pt, _parse_state, meta_path)
        meta = None if state is None else self._read(key, meta_path, _parse_meta, pt)
        return None if meta is None else (state, meta)

    def has_model(self, key: str) -> bool:
        """Whether model `key` is stored and readable (an unreadable entry is discarded)."""
        return self._read_model(key) is not None

    def load_model(self, key: str, model: torch.nn.Module) -> tuple[torch.nn.Module, dict]:
        """Load the stored weights into `model`; returns it (eval mode) and its metadata.
        FileNotFoundError when the model is not stored or was unreadable."""
        entry = self._read_model(key)
        if entry is None:
            raise FileNotFoundError(f"no readable stored model {key!r} in {self.root / 'models'}")
        state, meta = entry
        model.load_state_dict(state)
        return model.eval(), meta

    def save_model(self, key: str, model: torch.nn.Module, meta: dict) -> None:
        with self.lock(key):
            save_state_dict(self._path("models", key, "pt"), model)
            write_json(self._path("models", key, "json"), meta)  # written last: marks completeness

    def cached_model(
        self,
        key: str,
        label: str,
        build: Callable[[], torch.nn.Module],
        train: Callable[[], torch.nn.Module],
        extra: dict | None = None,
    ) -> tuple[torch.nn.Module, dict]:
        """Load model `key` into `build()`, or train it, time it and store it.
        Returns (model, metadata with 'seconds' and 'cached').

        The check, the training and the save hold `key`'s lock: a second process asking for the
        same model waits and then loads it instead of training it again."""
        with self.lock(key):
            entry = self._read_model(key)
            if entry is not None:
                state, meta = entry
                model = build()
                try:
                    model.load_state_dict(state)
                except RuntimeError as err:  # keys or shapes that do not fit: retrain
                    self._discard(
                        self._path("models", key, "pt"), err, self._path("models", key, "json")
                    )
                else:
                    logger.info("reusing stored %s model (key %s)", label, key)
                    return model.eval(), {**meta, "cached": True}
            start = time.perf_counter()
            model = train()
            meta = {"seconds": time.perf_counter() - start, "label": label, **(extra or {})}
            self.save_model(key, model, meta)
            return model, {**meta, "cached": False}

    def load_arrays(self, key: str) -> dict[str, np.ndarray] | None:
        """The stored arrays of `key`, or None when missing or unreadable (then discarded)."""
        return self._read(key, self._path("arrays", key, "npz"), _parse_arrays)

    def save_arrays(self, key: str, **arrays: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        with self.lock(key):
            atomic_write(self._path("arrays", key, "npz"), buf.getvalue())

    def load_json(self, key: str) -> Any | None:
        """The stored result of `key`, or None when missing or unreadable (then discarded)."""
        return self._read(key, self._path("results", key, "json"), _parse_json)

    def save_json(self, key: str, obj: Any) -> None:
        with self.lock(key):
            write_json(self._path("results", key, "json"), obj)

    def clean(
        self, max_age_days: float = 1.0, keep_job: Callable[[Path], bool] | None = None
    ) -> list[Path]:
        """Remove what crashed writers left behind, older than `max_age_days` (a younger one
        may belong to a write in progress in another process): temporary files `.*.tmp`
        anywhere in the store, uploads in transit `uploads/**/*.part`, folders an eviction was
        deleting (`.evicted.*`), and job folders ROOT/jobs/ID for which `keep_job(folder)` is
        False (the job backend knows which are finished; without `keep_job` none is removed).
        Returns the removed paths; a file that cannot be removed is logged and skipped."""
        try:
            found = [p for p in self.root.rglob(".*.tmp") if p.is_file()]
            found += [p for p in (self.root / "uploads").rglob("*.part") if p.is_file()]
            found += sorted(self.root.glob(f"{EVICTED}*"))
            jobs = self.root / "jobs"
            if keep_job is not None and jobs.is_dir():
                found += [p for p in jobs.iterdir() if p.is_dir() and not keep_job(p)]
        except OSError as err:  # a folder removed by another process meanwhile, no permission
            logger.warning("cleaning the store %s stopped: %s", self.root, err)
            return []
        removed = remove_stale(found, max_age_days)
        if removed:
            logger.info(
                "cleaned %d stale file(s) and job folder(s) from %s", len(removed), self.root
            )
        return removed
