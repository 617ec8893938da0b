"""Forget specs: what a user asks to forget, parsed once into a `ForgetSpec` value.

The text form (the CLI's `--forget`, the config hash and `config.json`) is ``KIND:BODY``:

* ``random:F`` — a fraction F of the training set D, drawn by seed;
* ``subclass:C:F`` — a fraction F of class C's training samples;
* ``class:C[,C...]`` — whole classes;
* ``ids:I,J,...`` or ``ids:FILE`` (pool ids separated by commas, spaces or new lines; the id
  list format is described at `parse_id_tokens`);
* ``mislabeled:F`` — corrective unlearning: a fraction F of D, drawn by seed, carries a wrong label
  (uniform over the other classes) from the start, and those samples are the forget set.

Classes are ids or names. A class ``*`` stands for a class that changes with the seed (the
odd class ids, then the even ones: 1, 3, 5, 7, 9, 0, 2, ... for seeds 0, 1, 2, ...), so that a
benchmark over seeds averages over several classes (``subclass:*:0.3``, ``class:*``).

Each kind is one frozen dataclass in `FORGET_KINDS` that knows how to parse its body, describe
itself, resolve against the D / H / T split (method spec §2) and draw its twin forget set H_f
(§3). Adding a kind is one class and one registry line; nothing outside this module dispatches on
the kind's name.
"""

from __future__ import annotations

import csv
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

SEED_CLASS = "*"
MAX_ID = 2**63 - 1  # ids are int64 pool positions
MAX_ID_LIST_BYTES = 64 * 2**20
"""The largest id file or upload read (64 MiB, millions of ids): a pool holds far fewer samples,
so anything bigger is the wrong file, and reading it whole could fill the memory."""
_ID_SEPARATORS = re.compile(r"[,\s]+")
_COLUMN_SEPARATORS = re.compile(r"[,\t]")


class ForgetSpecError(ValueError):
    """A forget spec is malformed or names an impossible forget set."""


def seed_class(seed: int, num_classes: int) -> int:
    """The class that `*` stands for under `seed`: odd ids first, then even ones, cycling."""
    order = [*range(1, num_classes, 2), *range(0, num_classes, 2)]
    return order[seed % num_classes]


def _fraction(text: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ForgetSpecError(
            f"fraction {text!r} in forget spec {spec!r} is not a number"
        ) from None


def _fraction_text(f: float) -> str:
    """`f` short (`0.1`, `1e-05`), yet exact: `parse(body())` must give back the same float."""
    short, exact = f"{f:g}", repr(f)  # repr: the shortest text that reads back as `f`
    return short if float(short) == f and len(short) <= len(exact) else exact


def _check_fraction(spec: ForgetSpec, f: float) -> None:
    if not 0 < f < 1:
        raise ForgetSpecError(
            f"fraction {f} in forget spec {str(spec)!r} must lie strictly between 0 and 1"
        )


def _class_token(text: str, spec: str) -> str:
    token = text.strip()
    if not token:
        raise ForgetSpecError(f"forget spec {spec!r} has an empty class name")
    return token


def class_id(token: str, classes: tuple[str, ...], seed: int, spec: str) -> int:
    """A class token (an id, a name, or `*`) as a class id of `classes`."""
    if token == SEED_CLASS:
        return seed_class(seed, len(classes))
    if token in classes and not token.isdigit():
        return classes.index(token)
    try:
        c = int(token)
    except ValueError:
        raise ForgetSpecError(
            f"unknown class {token!r} in forget spec {spec!r}; "
            f"classes are 0..{len(classes) - 1} or {list(classes)[:10]}"
        ) from None
    if not 0 <= c < len(classes):
        raise ForgetSpecError(
            f"unknown class {c} in forget spec {spec!r}; valid: 0..{len(classes) - 1}"
        )
    return c


def _shorten(text: str, n: int = 40) -> str:
    return text if len(text) <= n else f"{text[:n]}... ({len(text)} characters)"


def _out_of_range(value, where: str) -> ForgetSpecError:
    return ForgetSpecError(
        f"{where}: id {value} is out of range (ids are pool positions 0, 1, 2, ..., "
        f"at most {MAX_ID})"
    )


def _id(token: str, where: str) -> int:
    """One id token as an int. Only ASCII decimal digits make an id: `1_000`, `+3`, `0x10`, `3.0`
    or non-ASCII digits such as `٣` are junk, not ids (int() would take some of them)."""
    digits = token[1:] if token.startswith("-") else token
    if not (digits.isascii() and digits.isdigit()):
        raise ForgetSpecError(
            f"{where}: ids must be integers (pool positions 0, 1, 2, ...), not {_shorten(token)!r}"
        )
    significant = digits.lstrip("0")
    # Compare the length before int(): Python refuses to convert strings of > 4300 digits.
    if len(significant) > len(str(MAX_ID)) or int(significant or "0") > MAX_ID:
        raise _out_of_range(_shorten(token), where)
    if token.startswith("-") and significant:
        raise _out_of_range(token, where)
    return int(significant or "0")


def as_id(value, where: str) -> int:
    """A pool id given as a Python or numpy integer (or its decimal text), checked to lie in
    0..MAX_ID; anything else (a float, None, a huge int) is a ForgetSpecError naming it."""
    if isinstance(value, (bool, np.bool_)):
        raise ForgetSpecError(f"{where}: ids must be integers, not {value!r}")
    if isinstance(value, (int, np.integer)):
        if not 0 <= int(value) <= MAX_ID:
            raise _out_of_range(_shorten(str(int(value))), where)
        return int(value)
    if isinstance(value, str):
        return _id(value.strip(), where)
    raise ForgetSpecError(f"{where}: ids must be integers, not {_shorten(repr(value))}")


def _decode(data: str | bytes, where: str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ForgetSpecError(
            f"{where} is not UTF-8 text (byte {err.start}, line {line}: "
            f"{data[err.start : err.start + 4]!r}); save it as plain UTF-8 text"
        ) from None


def _tokens(line: str) -> list[str]:
    return [t for t in _ID_SEPARATORS.split(line) if t]


def _looks_like_id(token: str) -> bool:
    digits = token[1:] if token.startswith("-") else token
    return digits.isascii() and digits.isdigit()


def _column_ids(lines: list[tuple[int, str]], where: str) -> list[int]:
    """The `id` column of a table whose first line is a header."""
    n, header = lines[0]
    delimiter = next((d for d in ",\t;" if d in header), None)

    def fields(line: str) -> list[str]:
        if delimiter is None:
            return line.split()
        try:
            return [f.strip() for f in next(csv.reader([line], delimiter=delimiter))]
        except csv.Error as err:  # a NUL, or a field over csv's size limit
            raise ForgetSpecError(f"{where}: cannot read the table ({err})") from None

    names = [f.strip().lower() for f in fields(header)]
    if names.count("id") != 1:
        raise ForgetSpecError(
            f"{where}, line {n}: ids must be integers, not {_shorten(header.strip())!r}; a header "
            f"line must name exactly one `id` column (e.g. `id,label`), whose values are the ids"
        )
    column, ids = names.index("id"), []
    for n, line in lines[1:]:
        row = fields(line)
        if len(row) <= column or not row[column]:
            raise ForgetSpecError(f"{where}, line {n}: no value in the `id` column")
        ids.append(_id(row[column], f"{where}, line {n}"))
    return ids


def parse_id_tokens(data: str | bytes, where: str) -> tuple[int, ...]:
    """The ids of an id list (inline text, a file's bytes or an upload); `where` names it in errors.

    An id list is UTF-8 text (a leading byte-order mark is dropped): pool ids (ASCII decimal
    integers 0 .. 2**63-1) separated by commas, spaces or new lines; blank lines are ignored.
    Negative, huge, junk and duplicate ids are errors naming the value and its line.

    A table is read the way a user who exported one expects: when the first line holds no id it
    is a header, which must name exactly one `id` column (any case; comma, tab or semicolon
    separated); the ids are that column's values, every other column is ignored. A table without
    a header (several lines, each with the same number > 1 of comma or tab separated fields) is
    refused rather than read as one long id list: its other columns (labels, scores) would
    silently become ids. Lists over `MAX_ID_LIST_BYTES` are refused before anything is parsed.
    """
    if len(data) > MAX_ID_LIST_BYTES:
        unit = "bytes" if isinstance(data, bytes) else "characters"
        raise ForgetSpecError(
            f"{where} is too large ({len(data):,} {unit}; an id list is at most "
            f"{MAX_ID_LIST_BYTES:,})"
        )
    text = _decode(data, where)
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ForgetSpecError(f"{where} holds no id")
    if not any(_looks_like_id(t) for t in _tokens(lines[0][1])):
        ids = _column_ids(lines, where)
    else:
        widths = {
            len([f for f in _COLUMN_SEPARATORS.split(line) if f.strip()]) for _, line in lines
        }
        if len(lines) > 1 and len(widths) == 1 and widths.pop() > 1:
            n, line = lines[0]
            raise ForgetSpecError(
                f"{where} looks like a table without a header (line {n}: "
                f"{_shorten(line.strip())!r}): give one id per line, or add a header line "
                f"naming the `id` column (e.g. `id,label`)"
            )
        ids = [
            _id(t, f"{where}, line {n}" if len(lines) > 1 else where)
            for n, line in lines
            for t in _tokens(line)
        ]
    if not ids:
        raise ForgetSpecError(f"{where} holds no id")
    values, counts = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
    if (counts > 1).any():
        raise ForgetSpecError(f"{where}: duplicate ids {values[counts > 1][:10].tolist()}")
    return tuple(ids)


def random_wrong_labels(
    labels: np.ndarray, num_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """A label drawn uniformly from the classes other than each given label."""
    shift = rng.integers(1, num_classes, size=len(labels))
    return (np.asarray(labels) + shift) % num_classes


def twin_size(holdout: np.ndarray, forget: np.ndarray, min_size: int) -> int:
    """|H_f| for a drawn twin: max(|D_f|, min_size), as far as H holds samples."""
    return min(len(holdout), max(len(forget), min_size))


class ForgetSpec(ABC):
    """One forget request, independent of any dataset until `resolve`d against a split."""

    kind: ClassVar[str]
    grammar: ClassVar[str]
    relabels: ClassVar[bool] = False
    """True when the spec changes labels before any model trains (the original depends on it)."""

    @classmethod
    @abstractmethod
    def parse(cls, body: str, spec: str) -> ForgetSpec:
        """The spec of this kind from the text after `KIND:` (`spec` is the whole text, for
        errors)."""

    @abstractmethod
    def body(self) -> str:
        """The text after `KIND:`; `parse(body())` gives back an equal spec."""

    @abstractmethod
    def describe(self) -> str:
        """A short human description, e.g. "30% of class 3"."""

    @abstractmethod
    def select(
        self, labels: np.ndarray, train: np.ndarray, classes: tuple[str, ...], seed: int
    ) -> np.ndarray:
        """The forget ids (any order) among the training ids `train`."""

    def twin(
        self, labels: np.ndarray, holdout: np.ndarray, forget: np.ndarray, min_size: int, seed: int
    ) -> np.ndarray:
        """H_f ⊆ H distributed like D_f (method spec §3), sorted. By default: H samples drawn to
        match D_f's class histogram, max(|D_f|, min_size) of them where H has them."""
        rng, size = np.random.default_rng([seed, 0x7F]), twin_size(holdout, forget, min_size)
        classes, counts = np.unique(labels[forget], return_counts=True)
        picked = []
        for c, n in zip(classes, counts):
            members = holdout[labels[holdout] == c]
            want = min(len(members), int(round(n * size / len(forget))))
            picked.append(rng.choice(members, size=want, replace=False))
        return np.sort(np.concatenate(picked)) if picked else np.empty(0, np.int64)

    def trained_labels(
        self, labels: np.ndarray, forget: np.ndarray, num_classes: int, seed: int
    ) -> np.ndarray:
        """The labels every model trains on, given the pool's `labels` and the resolved forget
        set: the pool's own, except for a kind that `relabels`."""
        return labels

    def twin_labels(
        self, labels: np.ndarray, twin_forget: np.ndarray, num_classes: int, seed: int
    ) -> np.ndarray:
        """The labels of the twin problem (its H_f mirrors D_f): `labels` unless the kind
        `relabels`."""
        return labels

    def mirrored(self, train: np.ndarray, forget: np.ndarray) -> np.ndarray:
        """The training ids whose fit under M_o the twin model must reach on H_f (method spec
        §3): all of D, since H_f is drawn like D's samples; a kind whose H_f mirrors D_f alone
        (it is unlike the rest of D) returns D_f."""
        return train

    def resolve(
        self, labels: np.ndarray, train: np.ndarray, classes: tuple[str, ...], seed: int
    ) -> np.ndarray:
        """The forget set D_f ⊂ D as sorted pool ids. Raises ForgetSpecError for an empty set, the
        whole training set, unknown classes or ids outside D."""
        forget = np.sort(
            np.asarray(self.select(np.asarray(labels), train, classes, seed), dtype=np.int64)
        )
        if len(forget) == 0:
            raise ForgetSpecError(f"forget spec {str(self)!r} selects no training sample")
        if len(forget) >= len(train):
            raise ForgetSpecError(
                f"forget spec {str(self)!r} selects the whole training set; "
                "nothing would be left to retrain on"
            )
        return forget

    def __str__(self) -> str:
        return f"{self.kind}:{self.body()}"


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0xF0])


@dataclass(frozen=True)
class RandomForget(ForgetSpec):
    """A `fraction` of D drawn uniformly by seed; its twin is a random part of H."""

    fraction: float
    kind: ClassVar[str] = "random"
    grammar: ClassVar[str] = "random:F"

    def __post_init__(self):
        _check_fraction(self, self.fraction)

    @classmethod
    def parse(cls, body, spec):
        return cls(_fraction(body, spec))

    def body(self):
        return _fraction_text(self.fraction)

    def describe(self):
        return f"{self.fraction:.0%} of the training set, at random"

    def select(self, labels, train, classes, seed):
        return _rng(seed).choice(train, size=round(self.fraction * len(train)), replace=False)

    def twin(self, labels, holdout, forget, min_size, seed):
        rng = np.random.default_rng([seed, 0x7F])
        return np.sort(
            rng.choice(holdout, size=twin_size(holdout, forget, min_size), replace=False)
        )


def _class_twin(labels, holdout, forget) -> np.ndarray:
    """Every H sample of D_f's classes."""
    return holdout[np.isin(labels[holdout], np.unique(labels[forget]))]


@dataclass(frozen=True)
class SubclassForget(ForgetSpec):
    """A `fraction` of one class's training samples; its twin is every H sample of that class."""

    cls: str
    fraction: float
    kind: ClassVar[str] = "subclass"
    grammar: ClassVar[str] = "subclass:C:F"

    def __post_init__(self):
        _check_fraction(self, self.fraction)

    @classmethod
    def parse(cls, body, spec):
        c_text, sep, f_text = body.rpartition(":")
        if not sep:
            raise ForgetSpecError(f"forget spec {spec!r} must look like subclass:CLASS:FRACTION")
        return cls(_class_token(c_text, spec), _fraction(f_text, spec))

    def body(self):
        return f"{self.cls}:{_fraction_text(self.fraction)}"

    def describe(self):
        return f"{self.fraction:.0%} of class {self.cls}"

    def select(self, labels, train, classes, seed):
        c = class_id(self.cls, classes, seed, str(self))
        members = train[labels[train] == c]
        return _rng(seed).choice(members, size=round(self.fraction * len(members)), replace=False)

    def twin(self, labels, holdout, forget, min_size, seed):
        return _class_twin(labels, holdout, forget)


@dataclass(frozen=True)
class ClassForget(ForgetSpec):
    """Whole classes; the twin is every H sample of those classes."""

    classes: tuple[str, ...]
    kind: ClassVar[str] = "class"
    grammar: ClassVar[str] = "class:C[,C...]"

    def __post_init__(self):
        if not self.classes:
            raise ForgetSpecError("choose at least one class to forget")

    @classmethod
    def parse(cls, body, spec):
        if not body.strip():
            raise ForgetSpecError(f"forget spec {spec!r} names no class")
        return cls(tuple(_class_token(t, spec) for t in body.split(",")))

    def body(self):
        return ",".join(self.classes)

    def describe(self):
        return f"class{'es' if len(self.classes) > 1 else ''} {', '.join(self.classes)}"

    def select(self, labels, train, classes, seed):
        ids = sorted({class_id(t, classes, seed, str(self)) for t in self.classes})
        return train[np.isin(labels[train], ids)]

    def twin(self, labels, holdout, forget, min_size, seed):
        return _class_twin(labels, holdout, forget)


@dataclass(frozen=True)
class IdsForget(ForgetSpec):
    """Listed pool ids (inline, or read from the file `source` at parse time); the twin matches
    their class histogram."""

    ids: tuple[int, ...]
    source: str | None = None
    kind: ClassVar[str] = "ids"
    grammar: ClassVar[str] = "ids:FILE | ids:I,J,..."

    def __post_init__(self):
        if not self.ids:
            raise ForgetSpecError("the id list is empty")
        for i in self.ids:  # a negative or > 64-bit id would break numpy later (OverflowError)
            as_id(i, "the id list")

    @classmethod
    def parse(cls, body, spec):
        """Inline ids when `body` holds a comma or is one integer, else the id file `body`."""
        where = f"forget spec {_shorten(spec, 60)!r}"
        if "," in body or _looks_like_id(body.strip()):
            return cls(parse_id_tokens(body, where))
        where = f"id file {_shorten(body, 200)!r} in forget spec {_shorten(spec, 200)!r}"
        try:
            if not Path(body).is_file():
                raise ForgetSpecError(f"{where} does not exist (or is not a file)")
            with open(body, "rb") as f:  # bounded: /proc files and pipes report no size
                data = f.read(MAX_ID_LIST_BYTES + 1)
        except (OSError, ValueError) as err:  # ValueError: a NUL or lone surrogate in the path
            if isinstance(err, ForgetSpecError):
                raise
            raise ForgetSpecError(f"{where} cannot be read: {err}") from None
        return cls(parse_id_tokens(data, where), source=body)

    def body(self):
        return self.source if self.source is not None else ",".join(map(str, self.ids))

    def describe(self):
        return f"{len(self.ids)} listed sample{'s' if len(self.ids) != 1 else ''}"

    def select(self, labels, train, classes, seed):
        forget = np.asarray(self.ids, dtype=np.int64)
        bad = forget[(forget < 0) | (forget >= len(labels))]
        if len(bad):
            raise ForgetSpecError(
                f"forget spec {self.short()!r}: ids {bad[:10].tolist()} are out of range "
                f"0..{len(labels) - 1}"
            )
        outside = np.setdiff1d(forget, train)
        if len(outside):
            raise ForgetSpecError(
                f"forget spec {self.short()!r}: ids {outside[:10].tolist()} are not in the "
                f"training set (they are holdout or test samples)"
            )
        return forget

    def short(self) -> str:
        text = str(self)
        return text if len(text) <= 60 else text[:57] + "..."


def _relabel(labels: np.ndarray, ids: np.ndarray, num_classes: int, rng) -> np.ndarray:
    out = np.array(labels, copy=True)
    out[ids] = random_wrong_labels(out[ids], num_classes, rng)
    return out


@dataclass(frozen=True)
class MislabeledForget(RandomForget):
    """Corrective unlearning ("remove the images we labelled wrong"): a `fraction` of D, drawn
    like `random:F`, gets a wrong label before any model trains, and is the forget set. The
    original memorises the wrong labels; the gold model, which never saw them, predicts the true
    class for most. The twin mirrors it: a random part of H, mislabeled the same way, is H_f."""

    kind: ClassVar[str] = "mislabeled"
    grammar: ClassVar[str] = "mislabeled:F"
    relabels: ClassVar[bool] = True

    def describe(self):
        return f"{self.fraction:.0%} of the training set, mislabeled"

    def select(self, labels, train, classes, seed):
        if len(classes) < 2:
            raise ForgetSpecError(f"forget spec {str(self)!r} needs at least 2 classes")
        return super().select(labels, train, classes, seed)

    def trained_labels(self, labels, forget, num_classes, seed):
        return _relabel(labels, forget, num_classes, np.random.default_rng([seed, 0x3A]))

    def mirrored(self, train, forget):
        return forget  # H_f is all mislabeled, like D_f: how much of D_f M_o fits

    def twin_labels(self, labels, twin_forget, num_classes, seed):
        return _relabel(labels, twin_forget, num_classes, np.random.default_rng([seed, 0x3B]))


FORGET_KINDS: dict[str, type[ForgetSpec]] = {
    k.kind: k for k in (RandomForget, SubclassForget, ClassForget, IdsForget, MislabeledForget)
}


def register_forget_kind(kind: type[ForgetSpec]) -> type[ForgetSpec]:
    """Add a ForgetSpec class to FORGET_KINDS under its `kind` (usable as a decorator); a kind
    name that is taken, or that is not a plain identifier, is a ValueError."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", getattr(kind, "kind", "") or ""):
        raise ValueError(f"forget kind name {getattr(kind, 'kind', None)!r}: use a-z, 0-9, _")
    if kind.kind in FORGET_KINDS and FORGET_KINDS[kind.kind] is not kind:
        raise ValueError(f"forget kind {kind.kind!r} is already registered")
    FORGET_KINDS[kind.kind] = kind
    return kind


def relabels(text: str) -> bool:
    """True when the forget spec `text` changes training labels (without parsing its body, so an
    `ids:FILE` whose file has gone is no error here)."""
    kind = FORGET_KINDS.get(str(text).partition(":")[0])
    return kind is not None and kind.relabels


def parse_forget(text: str | ForgetSpec) -> ForgetSpec:
    """The ForgetSpec of `text` (`KIND:BODY`, see the module docstring); a spec is returned as
    is."""
    if isinstance(text, ForgetSpec):
        return text
    kind, _, body = str(text).partition(":")
    if kind not in FORGET_KINDS:
        grammar = ", ".join(k.grammar for k in FORGET_KINDS.values())
        raise ForgetSpecError(f"unknown forget spec kind {kind!r} in {text!r}; use {grammar}")
    return FORGET_KINDS[kind].parse(body, text)
