"""The store's disk budget: what the store holds, when each entry was last used, and eviction of
the least recently used entries until the store fits its budget (`TMU_MAX_STORE_GB`).

The run store (tmu.artifacts) caches every model, array and result and the job backend keeps
every run folder; without a budget nothing ever deletes them, and a server that many visitors
use fills its disk. The job backend (`tmu.jobs.JobQueue`) calls `evict` at start and after each
job, protecting what is in use: the folders of active jobs and the files their configs name, and
what a tab is showing (`Pins`).

An entry is what goes whole: a model (models/KEY.pt and KEY.json), arrays (arrays/KEY.npz), a
result (results/KEY.json), a job folder (jobs/ID), an uploaded file (uploads/**). Its last use is
the newest modification time of its files: the store touches a file it reads, a pin touches what
it pins (atime is often off or lazy). A store entry is deleted under its key's lock, taken
without waiting: a key being written or trained is skipped.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import shutil
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Iterable, Iterator

from .artifacts import EVICTED, Store, touch

logger = logging.getLogger(__name__)

ENV = "TMU_MAX_STORE_GB"


def budget_from_env(env: dict[str, str] | None = None) -> int | None:
    """The store budget in bytes from `TMU_MAX_STORE_GB` (gigabytes of 10⁹ bytes; a fraction is
    fine), or None when unset or empty (no budget). ValueError naming the value otherwise."""
    raw = (os.environ if env is None else env).get(ENV, "").strip()
    if not raw:
        return None
    try:
        gb = float(raw)
    except ValueError:
        gb = math.nan
    if not (math.isfinite(gb) and gb > 0):
        raise ValueError(f"{ENV}={raw!r} is not a positive number of gigabytes (e.g. 20 or 0.5)")
    return int(gb * 1e9)


@dataclass(frozen=True)
class Entry:
    """One thing eviction deletes whole: its `paths`, their total `size` in bytes, the newest
    modification time among them (`last_use`, seconds since the epoch), and the store `key`
    whose lock guards it (None for job folders and uploads)."""

    kind: str
    paths: tuple[Path, ...]
    size: int
    last_use: float
    key: str | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.paths[0].name}"


def _files(folder: Path) -> Iterator[os.stat_result]:
    """The stat of every regular file under `folder` (links neither followed nor counted)."""
    for dirpath, _, names in os.walk(folder):
        for name in names:
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except OSError:  # removed meanwhile
                continue
            if stat.S_ISREG(info.st_mode):
                yield info


def usage(root: Path) -> int:
    """Bytes of every file under the store `root` (entries, locks, leftovers alike)."""
    return sum(info.st_size for info in _files(Path(root)))


def _entry(kind: str, paths: Iterable[Path], key: str | None = None) -> Entry | None:
    """The entry made of `paths` (those that exist), or None when none does."""
    infos = []
    for path in paths:
        try:
            infos.append((path, path.lstat()))
        except OSError:
            continue
    if not infos:
        return None
    size = sum(
        sum(i.st_size for i in _files(p)) if p.is_dir() else info.st_size for p, info in infos
    )
    return Entry(kind, tuple(p for p, _ in infos), size, max(i.st_mtime for _, i in infos), key)


def _visible(folder: Path) -> list[Path]:
    """The entries of `folder` that are not temporary (a dot name: a write in progress)."""
    return (
        sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
    )


def _model_entries(folder: Path) -> Iterator[Entry | None]:
    for key in sorted({p.stem for p in _visible(folder) if p.suffix in (".pt", ".json")}):
        yield _entry("models", [folder / f"{key}.pt", folder / f"{key}.json"], key)


def _keyed_entries(suffix: str) -> Callable[[Path], Iterator[Entry | None]]:
    def entries(folder: Path) -> Iterator[Entry | None]:
        for path in _visible(folder):
            if path.suffix == suffix and path.is_file():
                yield _entry(folder.name, [path], path.stem)

    return entries


def _job_entries(folder: Path) -> Iterator[Entry | None]:
    for path in _visible(folder):
        if path.is_dir() and not path.is_symlink():
            yield _entry("jobs", [path])


def _upload_entries(folder: Path) -> Iterator[Entry | None]:
    for sub in _visible(folder):
        for path in _visible(sub) if sub.is_dir() else [sub]:
            if path.is_file() and not path.is_symlink() and path.suffix != ".part":
                yield _entry("uploads", [path])


ENTRY_KINDS: dict[str, Callable[[Path], Iterator[Entry | None]]] = {
    "models": _model_entries,
    "arrays": _keyed_entries(".npz"),
    "results": _keyed_entries(".json"),
    "jobs": _job_entries,
    "uploads": _upload_entries,
}
"""The store's folders and how each is cut into entries."""


def entries(root: Path) -> list[Entry]:
    """Every evictable entry of the store `root`, least recently used first."""
    found = [e for kind, cut in ENTRY_KINDS.items() for e in cut(Path(root) / kind) if e]
    return sorted(found, key=lambda e: e.last_use)


def _unchanged(entry: Entry) -> bool:
    """Whether `entry` was neither used nor rewritten since it was listed."""
    now = _entry(entry.kind, entry.paths, entry.key)
    return now is not None and now.last_use <= entry.last_use


def _delete(store: Store, entry: Entry) -> bool:
    """Delete `entry` if it is still unused and, for a store key, its lock is free at once."""
    if entry.key is None:
        return _unchanged(entry) and _remove(store.root, entry)
    with store.lock(entry.key, blocking=False) as held:
        return held and _unchanged(entry) and _remove(store.root, entry)


def _remove(root: Path, entry: Entry) -> bool:
    """Remove `entry`'s files. A folder is first moved out of its parent (ROOT/.evicted.*), so
    that no one lists it half-deleted; `Store.clean` removes it if this process dies first."""
    try:
        for path in entry.paths:
            if path.is_dir():
                trash = root / f"{EVICTED}{path.name}.{secrets.token_hex(4)}"
                path.rename(trash)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    except OSError as err:
        logger.warning("cannot evict %s from the store: %s", entry.name, err)
        return False
    return True


def evict(store: Store, budget: int, protect: Collection[Path] = ()) -> list[Entry]:
    """Delete the least recently used entries of `store` until it holds at most `budget` bytes;
    returns them. Never an entry with a path in `protect` (what is in use), nor one being
    written or used meanwhile. Logs what went, and when what is left is still over budget."""
    root = store.root.resolve()
    total = usage(root)
    if total <= budget:
        return []
    keep = {Path(p).resolve() for p in protect}
    evicted = []
    for entry in entries(root):
        if total <= budget:
            break
        if keep.intersection(entry.paths) or not _delete(store, entry):
            continue
        total -= entry.size
        evicted.append(entry)
        logger.info("evicted %s (%d bytes, last used %s)", entry.name, entry.size, _when(entry))
    if evicted:
        logger.warning(
            "the store %s was over its budget of %d bytes: evicted %d entries (%d bytes), least "
            "recently used first: %s",
            root,
            budget,
            len(evicted),
            sum(e.size for e in evicted),
            ", ".join(e.name for e in evicted[:10]) + (" ..." if len(evicted) > 10 else ""),
        )
    if total > budget:
        logger.warning(
            "the store %s still holds %d bytes, over its budget of %d: the rest is in use",
            root,
            total,
            budget,
        )
    return evicted


def _when(entry: Entry) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.last_use))


class Pins:
    """What each owner (a dashboard tab) is showing, kept from eviction. An owner has one pin,
    replaced by its next; a pin expires `ttl` seconds after it was last set, since a closed tab
    never says goodbye. Pinning records a use of a pinned folder (`touch`: a run folder); a
    pinned file is left as it is, since its modification time is its content stamp (the job keys
    of uploaded weights hold `tmu.models.file_stamp`: a touch made every run of them new)."""

    def __init__(self, ttl: float = 3600.0, clock: Callable[[], float] = time.monotonic):
        self.ttl, self.clock = ttl, clock
        self._pins: dict[str | None, tuple[frozenset[Path], float]] = {}
        self._lock = threading.Lock()

    def pin(self, owner: str | None, paths: Iterable[str | Path | None]) -> None:
        """Pin `paths` (None entries ignored) for `owner`, instead of what it pinned before."""
        kept = frozenset(Path(p).resolve() for p in paths if p)
        with self._lock:
            self._pins[owner] = (kept, self.clock() + self.ttl)
        for path in kept:
            if path.is_dir():
                touch(path)

    def paths(self) -> set[Path]:
        """Every path pinned now; expired pins are dropped."""
        now = self.clock()
        with self._lock:
            self._pins = {o: pin for o, pin in self._pins.items() if pin[1] > now}
            return {p for kept, _ in self._pins.values() for p in kept}


def paths_under(value: object, root: Path) -> list[Path]:
    """The absolute paths under `root` that a job config names anywhere in `value` (nested
    dicts and lists): the uploaded weights a job uses are in the store, outside its folder."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in paths_under(v, root)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in paths_under(v, root)]
    if isinstance(value, str) and value.startswith(f"{root}{os.sep}"):
        return [Path(value)]
    return []
