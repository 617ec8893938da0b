"""Bring your own data and model from the browser: an uploaded zip of class folders becomes an
imported dataset for everyone on this server, an uploaded `.pt` file becomes the original model
of this tab's runs.

The browser sends bytes, and for a dataset a name checked against `tmu.importer.NAME` (letters,
digits, `_.-`; no `/`). Every path is made here from the data root, the store root and a hash of
the bytes: no file-system path is ever taken from the browser, and an uploaded file's own name is
only shown, never used. Archives are checked whole by `tmu.importer` before anything appears;
weights are read with `weights_only=True` (a file carrying code is refused, never executed) and
fitted to the chosen model before a run is accepted.

Memory: an upload is decoded in a child process, never in the server (`TMU_UPLOAD_ISOLATION=0`
decodes in-process, for tests). An archive is imported by `python -m tmu import-dataset` under
`UPLOAD_LIMITS` (the total decoded size is checked from the image headers before any pixel is
decoded) and `--memory-mb TMU_IMPORT_MEMORY_MB` (default 1024): a bad archive fails its own
import with a message, and the server only ever holds the imported pool as uint8 codes
(`data.pool`). A weights file is checked once per content hash in a child under the same memory
cap (`tmu.models.check_weights_archive` first: a small file that inflates to gigabytes is
refused unread); the server keeps the verdict, the file's parameter shapes, and checks a fit
against a model from those shapes alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tmu.artifacts import atomic_write, default_root
from tmu.data import IMAGEFOLDER_PREFIX, IMPORTED, DatasetError
from tmu.importer import ImportLimits, check_name, import_dataset

from .data import data_root, pool
from .state import Key, State

logger = logging.getLogger(__name__)

UPLOAD_LIMITS = ImportLimits(
    max_files=60_000,
    max_bytes=512 * 2**20,
    max_classes=200,
    max_pixels=2**22,
    max_pool_bytes=384 * 2**20,
)
"""What one archive uploaded from the browser may hold (the CLI's limits are larger): at most
4.2 megapixels an image (2048 x 2048) and 384 MB of decoded float32 images in all, which the
server holds as 96 MB of uint8 codes."""
IMPORT_MEMORY_MB = 1024
"""Default of env var TMU_IMPORT_MEMORY_MB: the memory an upload's check may use beyond the
interpreter's own, in its child process."""
IMPORT_TIMEOUT_S = 600
REPO_ROOT = Path(__file__).resolve().parents[2]


def import_upload(data: bytes, name: str) -> str:
    """Import the uploaded zip `data` as dataset `name`; returns its dataset value. Raises
    DatasetError (a ValueError) with the reason: a bad name, a name taken, a bad archive, one
    that needs more memory than the import may use."""
    name = check_name((name or "").strip())
    with tempfile.TemporaryDirectory(prefix=".upload.", dir=_scratch()) as tmp:
        archive = Path(tmp) / "upload.zip"
        archive.write_bytes(data)
        if isolated():
            _import_in_child(archive, name)
        else:
            import_dataset(archive, name, data_root(), UPLOAD_LIMITS)
    return f"{IMAGEFOLDER_PREFIX}{data_root() / IMPORTED / name}"


def isolated() -> bool:
    """Whether uploads are decoded in a child process (always, unless TMU_UPLOAD_ISOLATION=0)."""
    return os.environ.get("TMU_UPLOAD_ISOLATION", "1") != "0"


def memory_mb() -> int:
    """TMU_IMPORT_MEMORY_MB, else IMPORT_MEMORY_MB; a bad value is a DatasetError naming it."""
    text = os.environ.get("TMU_IMPORT_MEMORY_MB") or str(IMPORT_MEMORY_MB)
    if not text.isdigit() or int(text) < 64:
        raise DatasetError(f"TMU_IMPORT_MEMORY_MB={text!r} must be a whole number of MB, >= 64")
    return int(text)


def _limit_flags(limits: ImportLimits) -> list[str]:
    """`limits` as `python -m tmu import-dataset` flags (--max-files N ...)."""
    out = []
    for field in dataclasses.fields(limits):
        out += [f"--{field.name.replace('_', '-')}", str(getattr(limits, field.name))]
    return out


def _child(args: list[str]) -> subprocess.CompletedProcess:
    """Run `python ARGS` from the repository root with one thread and two malloc arenas (its
    address-space cap then measures its data, not per-thread reservations)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
    }
    try:
        return subprocess.run(
            [sys.executable, *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise DatasetError(
            f"the upload took more than {IMPORT_TIMEOUT_S} s to check; refused"
        ) from None


def _import_in_child(archive: Path, name: str) -> None:
    """`python -m tmu import-dataset` of `archive` as `name` under UPLOAD_LIMITS and the memory
    cap; its error (the last `error: ...` line) becomes this DatasetError. A child that dies
    for memory (MemoryError, or killed by a signal) is a message, and its temporary folder is
    removed."""
    base, mb = data_root() / IMPORTED, memory_mb()
    before = set(base.glob(f".{name}.*"))
    proc = _child(
        ["-m", "tmu", "import-dataset", str(archive), "--name", name]
        + ["--data-root", str(data_root()), "--memory-mb", str(mb), *_limit_flags(UPLOAD_LIMITS)]
    )
    if proc.returncode == 0:
        return
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    if proc.returncode > 0 and errors:
        raise DatasetError(errors[-1].removeprefix("error: "))
    logger.warning("import of %r failed (exit %s):\n%s", name, proc.returncode, proc.stderr)
    for leftover in set(base.glob(f".{name}.*")) - before:  # a killed child cleans up nothing
        shutil.rmtree(leftover, ignore_errors=True)
    if proc.returncode < 0 or "MemoryError" in proc.stderr or "allocate" in proc.stderr:
        raise DatasetError(
            f"the archive needs more memory than {mb} MB (TMU_IMPORT_MEMORY_MB) to decode; use "
            "fewer or smaller images"
        )
    raise DatasetError("the archive could not be imported (the reason is in the server's log)")


def _scratch() -> Path:
    """A folder for uploads in transit (inside the data root: same disk, no /tmp surprises)."""
    path = data_root() / IMPORTED
    path.mkdir(parents=True, exist_ok=True)
    return path


def weights_dir() -> Path:
    return Path(default_root()).resolve() / "uploads" / "weights"


@dataclass(frozen=True)
class Verdict:
    """What the check of one weights file found: why it is refused, else its parameters' shapes
    (enough to check its fit to any model without reading it again)."""

    error: str | None
    shapes: dict[str, tuple[int, ...]]


_verdicts: dict[str, Verdict] = {}
_verdicts_lock = threading.Lock()
CHECK_WEIGHTS = """
import json, sys
from tmu.importer import limit_memory
limit_memory(int(sys.argv[2]))
from tmu.models import WeightsError, read_state_dict
try:
    shapes = {k: list(v.shape) for k, v in read_state_dict(sys.argv[1]).items()}
except WeightsError as err:
    print(json.dumps({"error": str(err)}))
else:
    print(json.dumps({"shapes": shapes}))
"""
"""The child's script of `_check_file`: one JSON line, the refusal or the shapes."""


def _check_file(path: Path) -> Verdict:
    """Read weights file `path` (in a memory-capped child unless TMU_UPLOAD_ISOLATION=0)."""
    from tmu.models import WeightsError, read_state_dict

    if not isolated():
        try:
            return Verdict(None, {k: tuple(v.shape) for k, v in read_state_dict(path).items()})
        except WeightsError as err:
            return Verdict(str(err), {})
    mb = memory_mb()
    proc = _child(["-c", CHECK_WEIGHTS, str(path), str(mb)])
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        logger.warning("check of %s failed (exit %s):\n%s", path, proc.returncode, proc.stderr)
        return Verdict(
            f"weights file {str(path)!r} needs more memory than {mb} MB (TMU_IMPORT_MEMORY_MB) "
            "to read, or could not be read (the reason is in the server's log)",
            {},
        )
    if "error" in out:
        return Verdict(out["error"], {})
    return Verdict(None, {k: tuple(v) for k, v in out["shapes"].items()})


def weights_verdict(digest: str, path: Path) -> Verdict:
    """The verdict on the weights whose bytes hash to `digest` (held at `path`), checked once
    per server: every later rerun, fit or upload of the same bytes reuses it."""
    with _verdicts_lock:
        if digest in _verdicts:
            return _verdicts[digest]
    verdict = _check_file(path)
    verdict = dataclasses.replace(
        verdict, error=verdict.error and verdict.error.replace(repr(str(path)), "{file}")
    )
    with _verdicts_lock:
        return _verdicts.setdefault(digest, verdict)


def save_weights(state: State, data: bytes, filename: str) -> str:
    """Keep the uploaded weights (named by their hash in the store) as this tab's original model;
    returns the file's short hash. Raises WeightsError (a ValueError) for a file that is not a
    plain state_dict of tensors (a pickle carrying code is refused unread), truncated, empty or
    an archive that would inflate past `tmu.models.WeightsLimits`."""
    from tmu.models import WeightsError

    if not data:
        raise WeightsError(f"the uploaded file {filename!r} is empty")
    digest = hashlib.sha256(data).hexdigest()[:16]
    target = weights_dir() / f"{digest}.pt"
    if target.is_file():
        verdict = weights_verdict(digest, target)
    else:
        with tempfile.NamedTemporaryFile(dir=_mkdir(weights_dir()), suffix=".part") as tmp:
            tmp.write(data)
            tmp.flush()
            verdict = weights_verdict(digest, Path(tmp.name))
            if verdict.error is None:
                atomic_write(target, data)
    if verdict.error is not None:  # name the upload, not the file it was checked as
        raise WeightsError(verdict.error.replace("{file}", repr(filename)))
    state[Key.WEIGHTS] = str(target)
    state[Key.WEIGHTS_NAME] = f"{filename} ({digest})"
    return digest


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def clear_weights(state: State) -> None:
    """Train the original model again instead of using uploaded weights."""
    state.pop(Key.WEIGHTS, None)
    state.pop(Key.WEIGHTS_NAME, None)


def weights_in_use(state: State) -> str | None:
    """The uploaded weights file this tab's runs use, when it is still in the store."""
    path = state.get(Key.WEIGHTS)
    if path and Path(path).is_file() and Path(path).parent == weights_dir():
        return path
    return None


def check_weights(state: State) -> str | None:
    """Why this tab's uploaded weights do not fit its dataset and model, or are gone (None when
    they fit, or when this tab uploaded none). Gone: removed from the store (its budget, a clean
    up) after this tab chose them; a run must not quietly train an original model instead."""
    path = weights_in_use(state)
    if path is None:
        if state.get(Key.WEIGHTS):
            return (
                f"the uploaded weights {state.get(Key.WEIGHTS_NAME, '')!r} are no longer on the "
                "server (removed to keep its store within its budget); upload them again, or "
                "train the original model instead"
            )
        return None
    bad = _misfit(path, state[Key.DATASET], state[Key.MODEL])
    return bad and bad.replace(repr(path), repr(state.get(Key.WEIGHTS_NAME, "the upload")))


@lru_cache(maxsize=16)
def _misfit(path: str, dataset: str, model_name: str) -> str | None:
    """Why weights file `path` (named by its hash: its bytes never change) does not load into
    `model_name` for `dataset`; cached, since the Data page asks on every rerun. The file is
    never read here: its verdict (checked once, in a child) holds its shapes, and stand-in
    tensors of those shapes (a broadcast scalar: no memory) are fitted to the model."""
    import torch

    from tmu.models import WeightsError, build_model, fit_weights

    verdict = weights_verdict(Path(path).stem, Path(path))
    if verdict.error is not None:
        return verdict.error.replace("{file}", repr(path))
    state = {k: torch.zeros(()).expand(shape) for k, shape in verdict.shapes.items()}
    try:
        p = pool(dataset)
        model = build_model(model_name, p.in_channels, p.num_classes)
        fit_weights(model, state, model_name, p.num_classes, path)
    except (WeightsError, DatasetError) as err:
        return str(err)
    return None
