"""Flat `{key: array}` form of the inspection dataclasses, for one `.npz` file.

Each dataclass field becomes one array under `PREFIX/FIELD`; the field's annotation says how it
comes back: `str`, `int`, `float` and `tuple[str, ...]` fields are rebuilt as such, `dict[str, ...]`
fields are stored one key per entry (`PREFIX/FIELD/KEY`), everything else stays an array.
Nested dataclasses are packed and unpacked by their parent (`nested=`).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Mapping

import numpy as np


class InspectionFormatError(ValueError):
    """Arrays that are not a complete inspection of the expected format (the message says
    which key is missing or wrong)."""


def pack(obj, prefix: str, skip: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The leaf fields of dataclass `obj` as arrays under `prefix/`, except those in `skip`."""
    out = {}
    for f in fields(obj):
        if f.name in skip:
            continue
        value, key = getattr(obj, f.name), f"{prefix}/{f.name}"
        if isinstance(value, dict):
            out.update({f"{key}/{k}": np.asarray(v) for k, v in value.items()})
        elif isinstance(value, tuple):
            out[key] = np.asarray(value, dtype=str).reshape(len(value))
        else:
            out[key] = np.asarray(value)
    return out


def unpack(cls, arrays: Mapping[str, np.ndarray], prefix: str, **nested):
    """An instance of dataclass `cls` from `pack`'s arrays; `nested` gives the fields packed
    separately (already rebuilt). A missing key is an InspectionFormatError naming it."""
    values = {}
    for f in fields(cls):
        if f.name in nested:
            values[f.name] = nested[f.name]
            continue
        key = f"{prefix}/{f.name}"
        if str(f.type).startswith("dict["):
            values[f.name] = {
                k[len(key) + 1 :]: v for k, v in arrays.items() if k.startswith(key + "/")
            }
            continue
        value = need(arrays, key)
        kind = str(f.type)
        if kind == "str":
            value = str(value)
        elif kind == "float":
            value = float(value)
        elif kind == "int":
            value = int(value)
        elif kind.startswith("tuple[str"):
            value = tuple(str(v) for v in value)
        values[f.name] = value
    return cls(**values)


def need(arrays: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    """`arrays[key]`, or an InspectionFormatError naming the missing key."""
    if key not in arrays:
        raise InspectionFormatError(f"missing array {key!r}")
    return arrays[key]
