"""Bring your own data and model from the browser: an uploaded zip of class folders becomes an
imported dataset for everyone on this server, an uploaded `.pt` file becomes the original model
of this tab's runs.

The browser sends bytes, and for a dataset a name checked against `tmu.importer.NAME` (letters,
digits, `_.-`; no `/`). Every path is made here from the data root, the store root and a hash of
the bytes: no file-system path is ever taken from the browser, and an uploaded file's own name is
only shown, never used. Archives are checked whole by `tmu.importer` before anything appears;
weights are read with `weights_only=True` (a file carrying code is refused, never executed) and
fitted to the chosen model before a run is accepted.
"""

from __future__ import annotations

import hashlib
import tempfile
from functools import lru_cache
from pathlib import Path

from tmu.artifacts import atomic_write, default_root
from tmu.data import IMAGEFOLDER_PREFIX, IMPORTED, DatasetError
from tmu.importer import ImportLimits, import_dataset

from .data import data_root, pool
from .state import Key, State

UPLOAD_LIMITS = ImportLimits(max_files=60_000, max_bytes=512 * 2**20, max_classes=200)
"""What one archive uploaded from the browser may hold (the CLI's limits are larger)."""


def import_upload(data: bytes, name: str) -> str:
    """Import the uploaded zip `data` as dataset `name`; returns its dataset value. Raises
    DatasetError (a ValueError) with the reason: a bad name, a name taken, a bad archive."""
    name = (name or "").strip()
    with tempfile.TemporaryDirectory(prefix=".upload.", dir=_scratch()) as tmp:
        archive = Path(tmp) / "upload.zip"
        archive.write_bytes(data)
        imported = import_dataset(archive, name, data_root(), UPLOAD_LIMITS)
    return f"{IMAGEFOLDER_PREFIX}{imported.path}"


def _scratch() -> Path:
    """A folder for uploads in transit (inside the data root: same disk, no /tmp surprises)."""
    path = data_root() / IMPORTED
    path.mkdir(parents=True, exist_ok=True)
    return path


def weights_dir() -> Path:
    return Path(default_root()).resolve() / "uploads" / "weights"


def save_weights(state: State, data: bytes, filename: str) -> str:
    """Keep the uploaded weights (named by their hash in the store) as this tab's original model;
    returns the file's short hash. Raises WeightsError (a ValueError) for a file that is not a
    plain state_dict of tensors (a pickle carrying code is refused unread), truncated or empty."""
    from tmu.models import WeightsError, read_state_dict

    if not data:
        raise WeightsError(f"the uploaded file {filename!r} is empty")
    digest = hashlib.sha256(data).hexdigest()[:16]
    target = weights_dir() / f"{digest}.pt"
    if not target.is_file():
        with tempfile.NamedTemporaryFile(dir=_mkdir(weights_dir()), suffix=".part") as tmp:
            tmp.write(data)
            tmp.flush()
            try:
                read_state_dict(tmp.name)
            except WeightsError as err:  # name the upload, not the temporary file
                raise WeightsError(str(err).replace(repr(tmp.name), repr(filename))) from None
        atomic_write(target, data)
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
    """Why this tab's uploaded weights do not fit its dataset and model (None when they do, or
    when no weights are in use)."""
    path = weights_in_use(state)
    if path is None:
        return None
    bad = _misfit(path, state[Key.DATASET], state[Key.MODEL])
    return bad and bad.replace(repr(path), repr(state.get(Key.WEIGHTS_NAME, "the upload")))


@lru_cache(maxsize=16)
def _misfit(path: str, dataset: str, model_name: str) -> str | None:
    """Why weights file `path` (named by its hash: its bytes never change) does not load into
    `model_name` for `dataset`; cached, since the Data page asks on every rerun."""
    from tmu.models import WeightsError, build_model, load_weights

    try:
        p = pool(dataset)
        load_weights(
            build_model(model_name, p.in_channels, p.num_classes), path, model_name, p.num_classes
        )
    except (WeightsError, DatasetError) as err:
        return str(err)
    return None
