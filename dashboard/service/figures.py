"""The figures of `tmu.plots` and `tmu.plots_inspect`, built once and shared by every rerun.

A Streamlit page runs top to bottom on every click, and building a plotly figure costs 50-500 ms
of Python (the Alignment page's eleven charts took 1.2 s a rerun, the Attributions grid 2 s):
under a classroom's load that is most of the server's time. The inputs of a result page are the
same objects from one rerun to the next (`service.load` caches each run, its report and arrays),
so a figure built from them is kept and given again: `plots.per_class_accuracy(report, "forget")`
through this module builds the figure the first time and returns the same one after.

Only the figure builders (annotated `-> go.Figure`) are memoised; every other name of the module
is passed through. An argument is matched by value when it is a plain immutable value (str, int,
float, bool, None, tuples of those) and by identity otherwise (a report dict, an array); the
arguments are kept with the figure, so an identity is never reused while its entry lives.
Figures are shared by every tab: a page must not change one after it gets it
(tests/dashboard/test_dash_figures.py checks the views).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from types import ModuleType
from typing import Any, Callable

from tmu import plots as _plots
from tmu import plots_inspect as _plots_inspect

PLAIN = (str, int, float, bool, type(None))


def _ident(value: Any) -> tuple:
    if isinstance(value, PLAIN):
        return ("=", type(value).__name__, value)
    if isinstance(value, tuple) and all(isinstance(v, PLAIN) for v in value):
        return ("=", "tuple", value)
    return ("id", id(value))


def memoised(build: Callable[..., Any], size: int = 128) -> Callable[..., Any]:
    """`build` whose results are kept (at most `size`, least recently used dropped first) and
    given again for the same arguments: plain values matched by value, others by identity (and
    kept alive with the result). Thread-safe: the server runs one thread per session."""
    results: OrderedDict[tuple, tuple[tuple, dict, Any]] = OrderedDict()
    lock = threading.Lock()

    @functools.wraps(build)
    def cached(*args: Any, **kwargs: Any) -> Any:
        key = (
            tuple(_ident(a) for a in args),
            tuple(sorted((k, _ident(v)) for k, v in kwargs.items())),
        )
        with lock:
            if key in results:
                results.move_to_end(key)
                cached.hits += 1
                return results[key][2]
        value = build(*args, **kwargs)
        with lock:
            cached.misses += 1
            results[key] = (args, kwargs, value)  # keeps the identities alive
            while len(results) > size:
                results.popitem(last=False)
        return value

    cached.hits = cached.misses = 0
    return cached


def per_run(build: Callable[..., Any]) -> Callable[..., Any]:
    """`memoised` for a view of a loaded run (its first argument): a run holds its models and
    data, and an entry keeps its run alive, so few are kept (as many as `service.load` caches,
    times a few methods)."""
    return memoised(build, size=16)


class MemoPlots:
    """`module` with its figure builders memoised (`memoised`, `size` figures each)."""

    def __init__(self, module: ModuleType, size: int = 64):
        self._module, self._size = module, size
        self._builders: dict[str, Callable[..., Any]] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if not callable(value) or getattr(value, "__annotations__", {}).get("return") not in (
            "go.Figure",
            "Figure",
        ):
            return value
        with self._lock:
            if name not in self._builders:
                self._builders[name] = memoised(value, self._size)
            return self._builders[name]


plots = MemoPlots(_plots)
plots_inspect = MemoPlots(_plots_inspect)
