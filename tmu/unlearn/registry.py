"""The method registry `METHODS` and its plug-in point (docs/plugins.md).

A method written outside this repository joins the registry in one of two ways:

* `register(cls)` (also a decorator): checks the class and adds it, in this process only;
* an entry point of the group `tmu.methods` in the plug-in's distribution, loaded by
  `load_plugins()` when `tmu.unlearn` is imported, so every process that imports tmu (the
  dashboard's job workers, Ray workers) sees it.

A plug-in that cannot be loaded (its import fails, it is not a `Method` subclass, its name is
taken) never breaks tmu: it is skipped with a logged warning and listed in `FAILED`.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable

from .base import Method

logger = logging.getLogger(__name__)

GROUP = "tmu.methods"
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
RESERVED = frozenset({"all"})  # `--twin-tune all` means every method of the run
PARAM_TYPES = (bool, int, float, str)  # JSON scalars: settable by --set, stable in cache keys

METHODS: dict[str, type[Method]] = {}
"""Every usable method by name. Mutated in place only: modules that imported it see plug-ins."""


@dataclass(frozen=True)
class Origin:
    """Where a registered method comes from: "built-in", "entry point" or "register()", the
    distribution that ships it and its version (None when unknown, e.g. a notebook class), and a
    hash of the class's source (None when unreadable)."""

    kind: str
    distribution: str | None = None
    version: str | None = None
    source_hash: str | None = None

    def label(self) -> str:
        dist = f" {self.distribution} {self.version}" if self.distribution else ""
        return f"{self.kind}{dist}"


ORIGINS: dict[str, Origin] = {}
FAILED: dict[str, str] = {}
"""Entry points of the last `load_plugins()` that were skipped: entry-point name -> why."""


class RegistrationError(ValueError):
    """A class that cannot be registered as a method; the message names the bad value."""


def _fail(cls: Any, why: str) -> RegistrationError:
    return RegistrationError(f"cannot register {_qualname(cls)} as a tmu method: {why}")


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _below_method(cls: type, attr: str) -> bool:
    """Whether `attr` is defined by `cls` or a base class other than Method itself."""
    return any(attr in vars(c) for c in cls.__mro__[: cls.__mro__.index(Method)])


def _attribute(cls: type, attr: str, kind: type) -> Any:
    """Class attribute `attr`, which `cls` (not Method) must set to a `kind`."""
    if not _below_method(cls, attr):
        raise _fail(cls, f"it does not set the class attribute `{attr}`")
    value = getattr(cls, attr)
    if not isinstance(value, kind):
        raise _fail(cls, f"`{attr}` must be a {kind.__name__}, got {value!r}")
    return value


def _check_name(cls: type) -> str:
    name = _attribute(cls, "name", str)
    if not NAME_PATTERN.fullmatch(name) or name in RESERVED:
        raise _fail(
            cls,
            f"name {name!r} must be an ASCII identifier of at most 64 characters (letters, "
            f"digits, _; no leading digit), usable in --methods lists, and not {sorted(RESERVED)}",
        )
    return name


def _check_defaults(cls: type) -> None:
    defaults = _attribute(cls, "defaults", dict)
    for key, value in defaults.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise _fail(cls, f"hyper-parameter name {key!r} in `defaults` is not an identifier")
        if not isinstance(value, PARAM_TYPES):
            raise _fail(
                cls,
                f"defaults[{key!r}]={value!r}: a default must be a bool, int, float or str "
                "(what --set and the run store's cache keys can hold)",
            )


def _grid_points(cls: type) -> list[dict]:
    grid = cls.grid
    if isinstance(grid, dict):
        bad = {k: v for k, v in grid.items() if not isinstance(v, list) or not v}
        if bad:
            raise _fail(cls, f"grid values must be non-empty lists, got {bad!r}")
        return [{k: v} for k, values in grid.items() for v in values]
    if isinstance(grid, list) and all(isinstance(p, dict) for p in grid):
        return grid
    raise _fail(cls, f"`grid` must be a dict of value lists or a list of dicts, got {grid!r}")


def _check_class(cls: Any) -> str:
    """Every check of `register`; returns the method's name."""
    if not isinstance(cls, type) or not issubclass(cls, Method) or cls is Method:
        raise _fail(cls, f"{cls!r} is not a subclass of tmu.unlearn.Method")
    name = _check_name(cls)
    if not _attribute(cls, "description", str).strip():
        raise _fail(cls, "its `description` is empty (the dashboard and `tmu methods` show it)")
    _check_defaults(cls)
    if cls._unlearn is Method._unlearn and cls.unlearn is Method.unlearn:
        raise _fail(cls, "it does not implement `_unlearn(self, original, problem, env)`")
    for flag in ("needs_predictor", "tuned_by_default"):
        if not isinstance(getattr(cls, flag), bool):
            raise _fail(cls, f"`{flag}` must be True or False, got {getattr(cls, flag)!r}")
    # Every grid value must be a valid setting: a twin-tuning run must not fail half-way.
    for point in [{}, *_grid_points(cls)]:
        try:
            cls(**point)
        except ValueError as err:
            raise _fail(cls, f"grid point {point!r}: {err}") from err
    return name


def _source_hash(cls: type) -> str | None:
    """A short hash of the class's source, so that an edited plug-in (an editable install, a
    notebook cell) does not reuse models stored under its old code."""
    try:
        return hashlib.sha256(inspect.getsource(cls).encode()).hexdigest()[:16]
    except (OSError, TypeError):
        return None


def _distribution_of(cls: type) -> tuple[str | None, str | None]:
    """The installed distribution that ships `cls`'s top-level package, and its version."""
    top = cls.__module__.partition(".")[0]
    names = metadata.packages_distributions().get(top, [])
    if not names:
        return None, None
    return names[0], metadata.version(names[0])


def register(
    cls: type[Method] | None = None, *, replace: bool = False, _origin: Origin | None = None
) -> Any:
    """Add the Method subclass `cls` to METHODS under `cls.name` and return it (so it also works
    as `@register` or `@register(replace=True)`).

    Checks: a subclass of Method that implements `_unlearn`; `name` an ASCII identifier (not
    "all"); a non-empty `description`; `defaults` a dict of bool / int / float / str values; every
    `grid` point a valid setting. A name already registered by another class is an error unless
    `replace=True` (a class of the same module and qualified name, e.g. a notebook cell run
    again, replaces its earlier self). Raises RegistrationError (a ValueError) naming the problem.

    Only this process sees a method registered by a call: for the dashboard's job processes and
    Ray workers, ship it as a `tmu.methods` entry point (docs/plugins.md).
    """
    if cls is None:
        return lambda c: register(c, replace=replace, _origin=_origin)
    name = _check_class(cls)
    old = METHODS.get(name)
    redefined = old is not None and _qualname(old) == _qualname(cls)
    if old is not None and old is not cls and not (replace or redefined):
        raise _fail(
            cls,
            f"the name {name!r} is already taken by {_qualname(old)} "
            f"({ORIGINS[name].label()}); choose another name or pass replace=True",
        )
    if _origin is None:
        kind = "built-in" if cls.__module__.startswith("tmu.") else "register()"
        dist = (None, None) if kind == "built-in" else _distribution_of(cls)
        _origin = Origin(kind, *dist, source_hash=None if kind == "built-in" else _source_hash(cls))
    METHODS[name] = cls
    ORIGINS[name] = _origin
    return cls


def cache_tag(name: str) -> list[str]:
    """What, besides its name and hyper-parameters, identifies the code of method `name` in a
    cache key: [] for a built-in (the tmu version salts every key), else its distribution's
    version and its source hash, so a new plug-in version never reuses stale models."""
    origin = ORIGINS[name]
    if origin.kind == "built-in":
        return []
    return [f"plugin {origin.distribution} {origin.version} {origin.source_hash}"]


def _entry_point_label(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    shipped = f" from {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point '{ep.name} = {ep.value}'{shipped}"


def _load_one(ep: metadata.EntryPoint) -> None:
    cls = ep.load()
    name = _check_class(cls)
    if ep.name != name:
        raise _fail(cls, f"the entry point is named {ep.name!r} but the class's name is {name!r}")
    dist = getattr(ep, "dist", None)
    origin = Origin(
        "entry point",
        dist.name if dist is not None else None,
        dist.version if dist is not None else None,
        _source_hash(cls),
    )
    old = METHODS.get(name)
    if old is not None and old is not cls:
        raise _fail(
            cls, f"the name {name!r} is already taken by {_qualname(old)} ({ORIGINS[name].label()})"
        )
    # The plug-in's module may also call `register` on import (old is cls): the entry point then
    # only adds where it comes from (its distribution and version).
    register(cls, replace=True, _origin=origin)


def load_plugins(select: Callable[..., Any] = metadata.entry_points) -> dict[str, str]:
    """Register every method of the entry-point group `tmu.methods`, in order of entry-point name
    (then value), so the result does not depend on the install order. Each entry point must name
    a Method subclass whose `name` equals the entry point's name. One that fails is skipped with
    a warning; returns (and stores in FAILED) {entry-point name: reason}. Calling it again is
    harmless: classes already registered stay as they are."""
    FAILED.clear()
    for ep in sorted(select(group=GROUP), key=lambda e: (e.name, e.value)):
        try:
            _load_one(ep)
        # A plug-in's import can raise anything; none of it may stop tmu from importing.
        except Exception as err:  # noqa: BLE001
            reason = f"{type(err).__name__}: {err}"
            FAILED[ep.name] = f"{_entry_point_label(ep)}: {reason}"
            logger.warning("skipped the plug-in method %s: %s", _entry_point_label(ep), reason)
    return dict(FAILED)


def get_method(name: str, **params: Any) -> Method:
    """An instance of the registered method `name` with hyper-parameter overrides `params`."""
    if name not in METHODS:
        failed = f"; the plug-in {name!r} failed to load: {FAILED[name]}" if name in FAILED else ""
        raise ValueError(f"unknown method {name!r}; valid methods: {sorted(METHODS)}{failed}")
    return METHODS[name](**params)
