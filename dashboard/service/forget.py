"""The forget set: a `tmu.forget.ForgetSpec` built from the widgets, checked against the split,
and the point-and-click selection (chart events, table rows, uploaded id lists)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tmu.data import DatasetError
from tmu.forget import (
    ClassForget,
    ForgetSpec,
    ForgetSpecError,
    IdsForget,
    MislabeledForget,
    RandomForget,
    SubclassForget,
    as_id,
    parse_id_tokens,
)

from tmu.config import RunConfig
from tmu.splits import request

from .data import pool
from .state import CLASSES, MISLABELED, RANDOM, SUBCLASS, Key, State

NOTHING_PICKED = (
    "no sample selected yet: drag a box or lasso on the embedding, tick rows in the table, "
    "or upload an id list"
)
FEW = 5  # fewer hand-picked samples than this: warn that the gaps to gold will be noisy


def forget_spec(state: State) -> ForgetSpec:
    """The ForgetSpec of the current widgets; ForgetSpecError (a message for the user) when they
    name no valid forget set."""
    mode = state[Key.FORGET_MODE]
    if mode == RANDOM:
        return RandomForget(float(state[Key.RANDOM_FRACTION]))
    if mode == CLASSES:
        return ClassForget(tuple(str(int(c)) for c in state[Key.CLASSES]))
    if mode == SUBCLASS:
        return SubclassForget(str(int(state[Key.SUB_CLASS])), float(state[Key.SUB_FRACTION]))
    if mode == MISLABELED:
        return MislabeledForget(float(state[Key.MISLABELED_FRACTION]))
    if not state[Key.SELECTION]:
        raise ForgetSpecError(NOTHING_PICKED)
    # as_id, not int(): a huge, negative or non-integer id in the selection must become the
    # message of check_forget, not an exception in the sidebar of every page.
    return IdsForget(tuple(sorted(as_id(i, "the selection") for i in state[Key.SELECTION])))


@dataclass(frozen=True)
class ForgetCheck:
    """The resolved forget set of the current settings, or why it is invalid (`error`)."""

    spec: str
    ids: np.ndarray
    per_class: dict[str, int]
    error: str | None = None
    warning: str | None = None
    given: np.ndarray | None = None  # the labels trained on, by `ids`, when some are wrong


def forget_captions(check: ForgetCheck, dataset: str, n: int) -> list[str]:
    """Captions of the first `n` forget samples: the id, and "id: true class→given label" for a
    sample trained with a wrong label (a mislabeled request, label noise)."""
    shown = check.ids[:n]
    if check.given is None:
        return [str(i) for i in shown]
    true = pool(dataset).y.numpy()[shown]
    return [f"{i}: {t}→{g}" if t != g else str(i) for i, t, g in zip(shown, true, check.given[:n])]


def check_forget(state: State) -> ForgetCheck:
    """Resolve the current forget set; every invalid choice becomes a message, never an
    exception."""
    empty = np.array([], dtype=np.int64)
    try:
        spec = forget_spec(state)
    except ForgetSpecError as err:
        return ForgetCheck("", empty, {}, str(err))
    name, seed = state[Key.DATASET], int(state[Key.SEED])
    try:
        p = pool(name)
        splits, labels = request(
            p.y.numpy(),
            spec,
            holdout=float(state.get(Key.HOLDOUT, 0.2)),
            test=RunConfig().split.test,
            seed=seed,
            classes=p.classes,
            official_test=p.official_test,
            label_noise=float(state.get(Key.LABEL_NOISE, 0.0)),
        )
    except (ForgetSpecError, DatasetError, ValueError) as err:
        return ForgetCheck(str(spec), empty, {}, str(err))
    ids = splits.forget
    counts = np.bincount(labels[ids], minlength=p.num_classes)
    per_class = {str(p.classes[c]): int(n) for c, n in enumerate(counts) if n}
    few = isinstance(spec, IdsForget) and len(ids) < FEW
    given = labels[ids] if (labels[ids] != p.y.numpy()[ids]).any() else None
    return ForgetCheck(
        str(spec),
        ids,
        per_class,
        None,
        "very few samples: the gaps to gold will be noisy" if few else None,
        given,
    )


def add_ids(state: State, ids) -> int:
    """Add pool ids to the point-and-click selection; returns how many were new. An id that is
    not a pool position (negative, beyond 64 bits, not an integer) is a ForgetSpecError naming
    it, and nothing is added."""
    old = set(state[Key.SELECTION])
    new = {as_id(i, "the id list") for i in ids} - old
    state[Key.SELECTION] = sorted(old | new)
    return len(new)


def clear_selection(state: State) -> None:
    state[Key.SELECTION] = []


def ids_from_selection(event) -> list[int]:
    """Pool ids from a plotly selection event: each point's customdata, which Streamlit may send as
    a
    number, a list or a {"0": value} dict."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    out = []
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, dict):
            cd = next(iter(cd.values()), None)
        elif isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if cd is not None:
            out.append(int(cd))
    return out


def parse_id_list(data: str | bytes) -> list[int]:
    """Ids from an uploaded file (its bytes or text), in the format of the CLI's `ids:FILE`
    (`tmu.forget.parse_id_tokens`: UTF-8, ids separated by commas, spaces or new lines, or a
    table whose header names an `id` column). Every bad file is a ForgetSpecError (a ValueError)
    naming the bad value: not UTF-8, too large, junk, negative or huge ids, a table without a
    header."""
    return list(parse_id_tokens(data, "the id list"))


def id_list_text(ids) -> str:
    return "\n".join(str(int(i)) for i in ids) + "\n"
