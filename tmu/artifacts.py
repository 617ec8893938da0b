"""The run store: every trained model and result under one root, keyed by a hash of the config
that produced it, written atomically (temp file + rename) so a crash never leaves a half-written
artifact, and reused when the same config is asked for again.

Layout: ROOT/models/KEY.pt (state_dict), ROOT/models/KEY.json (metadata: config, seconds),
ROOT/arrays/KEY.npz, ROOT/results/KEY.json. ROOT defaults to $TMU_HOME or ./runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

logger = logging.getLogger(__name__)


def default_root() -> Path:
    return Path(os.environ.get("TMU_HOME", "runs"))


def config_key(*parts: Any) -> str:
    """A stable 16-hex-digit hash of JSON-serialisable parts (numpy arrays hashed by content)."""
    h = hashlib.sha256()
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


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write(Path(path), json.dumps(obj, indent=2, allow_nan=True).encode())


def save_state_dict(path: Path, model: torch.nn.Module) -> None:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    atomic_write(Path(path), buf.getvalue())


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


class Store:
    """Content-addressed storage of models, arrays and JSON results."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()

    def _path(self, kind: str, key: str, ext: str) -> Path:
        return self.root / kind / f"{key}.{ext}"

    def has_model(self, key: str) -> bool:
        return (
            self._path("models", key, "pt").is_file()
            and self._path("models", key, "json").is_file()
        )

    def load_model(self, key: str, model: torch.nn.Module) -> tuple[torch.nn.Module, dict]:
        """Load the stored weights into `model`; returns it (eval mode) and its metadata."""
        model.load_state_dict(load_state_dict(self._path("models", key, "pt")))
        meta = json.loads(self._path("models", key, "json").read_text())
        return model.eval(), meta

    def save_model(self, key: str, model: torch.nn.Module, meta: dict) -> None:
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
        Returns (model, metadata with 'seconds' and 'cached')."""
        if self.has_model(key):
            model, meta = self.load_model(key, build())
            logger.info("reusing stored %s model (key %s)", label, key)
            return model, {**meta, "cached": True}
        start = time.perf_counter()
        model = train()
        meta = {"seconds": time.perf_counter() - start, "label": label, **(extra or {})}
        self.save_model(key, model, meta)
        return model, {**meta, "cached": False}

    def load_arrays(self, key: str) -> dict[str, np.ndarray] | None:
        path = self._path("arrays", key, "npz")
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def save_arrays(self, key: str, **arrays: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write(self._path("arrays", key, "npz"), buf.getvalue())

    def load_json(self, key: str) -> Any | None:
        path = self._path("results", key, "json")
        return json.loads(path.read_text()) if path.is_file() else None

    def save_json(self, key: str, obj: Any) -> None:
        write_json(self._path("results", key, "json"), obj)
