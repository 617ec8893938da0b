"""What the browser may see of the server: every message and export of the dashboard goes through
here, so that no server path reaches a visitor.

* `public_text(text)` — the data root, the store root, the repository, the home and temp folders
  as `<data>`, `<store>`, `<app>`, `<home>`, `<tmp>`; an imported dataset `imagefolder:/…/NAME` as
  `imagefolder:NAME` (its name, as the dataset picker shows it); the store's uploaded weights
  `…/uploads/weights/HASH.pt` as `uploaded weights HASH`; any other absolute path as
  `<server>/FILE` (its last part, which names the file without saying where it lives).
* `public_message(err)` — an exception's message, the same way;
  `keep=` spares what the user typed (a dataset name '/tmp/x' is their value, not a server path),
  and text made public once (`Public`) is never changed again.
* `public_report(report)` — a run's report (a nested dict) with every string made public: what
  the Compare page's JSON, CSV and HTML exports are built from.

Importable without Streamlit or torch; the roots are read on each call (a test or a second server
may point TMU_HOME and TMU_DATA elsewhere).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

from tmu.artifacts import default_root
from tmu.data import IMAGEFOLDER_PREFIX, IMPORTED, default_data_root

APP = Path(__file__).resolve().parents[2]

WEIGHTS = re.compile(r"(?:/[^\s'\"/:]+)*/uploads/weights/([0-9a-f]{8,64})\.pt")
IMPORTED_SET = re.compile(
    re.escape(IMAGEFOLDER_PREFIX) + r"(?:/[^\s'\"/:]+)*/" + re.escape(IMPORTED) + r"/([^\s'\"/:]+)"
)
# An absolute POSIX path: a slash not preceded by a word character or a dot (so "1/255", "and/or"
# and "a.b/c" are left alone), at least one folder, then the file's name.
ABSOLUTE = re.compile(r"(?<![\w.~<>:/-])(?:/[^\s'\"/:,;()\[\]]+)+/([^\s'\"/:,;()\[\]]*)")


def _roots() -> list[tuple[str, str]]:
    """(server folder, alias), the longest first (a store inside the app folder is <store>)."""
    pairs = {
        str(Path(default_root()).resolve()): "<store>",
        str(Path(default_data_root()).resolve()): "<data>",
        str(APP): "<app>",
        str(Path(tempfile.gettempdir()).resolve()): "<tmp>",
        os.path.expanduser("~"): "<home>",
    }
    return sorted(
        ((root, alias) for root, alias in pairs.items() if root not in ("", "/")),
        key=lambda p: -len(p[0]),
    )


class Public(str):
    """Text already made public: `public_text` returns one, and gives it back unchanged (so a
    message made public where it was raised, keeping what the user typed, stays as it is)."""


def public_text(text: Any, keep: Iterable[str | None] = ()) -> Public:
    """`text` (any object, as str) with every server path replaced as the module says, except the
    strings in `keep`: what the user typed (a name such as '/tmp/x' is their value, not ours)."""
    if isinstance(text, Public):
        return text
    text = "" if text is None else str(text)
    kept = sorted({k for k in keep if k}, key=len, reverse=True)
    for i, value in enumerate(kept):
        text = text.replace(value, f"\0{i}\0")
    text = IMPORTED_SET.sub(lambda m: f"{IMAGEFOLDER_PREFIX}{m.group(1)}", text)
    text = WEIGHTS.sub(lambda m: f"uploaded weights {m.group(1)}", text)
    for root, alias in _roots():
        text = text.replace(root, alias)
    text = ABSOLUTE.sub(lambda m: f"<server>/{m.group(1)}", text)
    for i, value in enumerate(kept):
        text = text.replace(f"\0{i}\0", value)
    return Public(text)


def public_message(err: BaseException, keep: Iterable[str | None] = ()) -> Public:
    """`err`'s message as the browser may see it (`keep`: as in `public_text`)."""
    return public_text(err, keep)


def public_report(obj: Any) -> Any:
    """`obj` (a report: dicts, lists, strings, numbers) with every string, key or value, public."""
    if isinstance(obj, str):
        return public_text(obj)
    if isinstance(obj, dict):
        return {public_report(k): public_report(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [public_report(v) for v in obj]
    return obj
