"""The dashboard's service layer: settings and selection held in a session-state mapping, the job
backend, dataset and run loading (cached), and the arrays each page shows.

Importable without Streamlit (pages pass `st.session_state` as `state`; tests pass a dict), so it
is tested directly. It never trains: training happens in `tmu.jobs` on the backend's worker.
"""
from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, MutableMapping

import numpy as np
import pandas as pd
from PIL import Image

from tmu import plots
from tmu.artifacts import default_root
from tmu.config import ConfigError, RunConfig, from_dict
from tmu.data import DatasetError, dataset_names, load_dataset
from tmu.jobs import DONE, JobStatus, LocalBackend
from tmu.models import MODELS
from tmu.splits import ForgetSpecError, resolve_forget, split_pool
from tmu.unlearn import METHODS

State = MutableMapping[str, Any]

QUICK = {"train": {"epochs": 2}, "twin": {"min_size": 50, "max_epochs": 2},
         "predictor": {"epochs": 20, "folds": 2}}
"""The quick profile (tests, live demos on slow machines): fewer epochs everywhere."""

FORGET_MODES = ("random fraction", "whole classes", "fraction of one class", "point and click")
DEFAULT_METHODS = ("tmu", "finetune")


def defaults() -> dict[str, Any]:
    """Widget defaults; `TMU_DASHBOARD_PROFILE=quick` and `TMU_DASHBOARD_DATASET` change them for dev/tests."""
    return {"w.dataset": os.environ.get("TMU_DASHBOARD_DATASET", "mnist5k"), "w.model": "cnn", "w.seed": 0,
            "w.forget_mode": "fraction of one class", "w.random_fraction": 0.1, "w.classes": [3],
            "w.sub_class": 3, "w.sub_fraction": 0.1, "w.methods": list(DEFAULT_METHODS), "w.gold_seeds": 3,
            "w.device": "auto", "w.quick": os.environ.get("TMU_DASHBOARD_PROFILE", "full") == "quick"}


def init_state(state: State) -> None:
    """Fill in every missing setting; the selection (`sel.ids`) is not a widget, so it survives pages."""
    for k, v in defaults().items():
        state.setdefault(k, v)
    state.setdefault("sel.ids", [])


# ---------------------------------------------------------------- datasets

@lru_cache(maxsize=2)
def pool(name: str):
    """The dataset's pool (cached per process)."""
    return load_dataset(name)


def datasets() -> list[str]:
    return [n for n in dataset_names() if not n.startswith("imagefolder")]


def models() -> list[str]:
    return sorted(MODELS)


def methods() -> dict[str, str]:
    """Method name -> one-line description, TMU first."""
    return {m: METHODS[m].description for m in sorted(METHODS, key=lambda m: (m != "tmu", m))}


@dataclass(frozen=True)
class DataInfo:
    classes: list[str]
    counts: np.ndarray
    sizes: dict[str, int]
    image_shape: tuple[int, ...]


@lru_cache(maxsize=8)
def data_info(name: str, seed: int) -> DataInfo:
    """Classes, per-class counts and D / H / T sizes for `seed` (default split fractions)."""
    p = pool(name)
    split = RunConfig().split
    train, hold, test = split_pool(len(p), split.holdout, split.test, seed, p.official_test)
    counts = np.bincount(p.y.numpy(), minlength=p.num_classes)
    return DataInfo([str(c) for c in p.classes], counts, {"D (train)": len(train), "H (holdout)": len(hold),
                                                          "T (test)": len(test)}, tuple(p.x.shape[1:]))


def to_uint8(img: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, 3) uint8 for display."""
    img = np.clip(np.asarray(img, dtype=np.float32), 0, 1)
    img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
    return (img * 255).round().astype(np.uint8)


def images(name: str, ids) -> list[np.ndarray]:
    """Display images (uint8) of pool ids."""
    x = pool(name).x
    return [to_uint8(x[int(i)].numpy()) for i in ids]


def data_uri(img: np.ndarray, scale: int = 2) -> str:
    """A PNG data URI of a uint8 image (for st.dataframe's ImageColumn)."""
    im = Image.fromarray(img)
    im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@lru_cache(maxsize=4)
def gallery(name: str, per_class: int = 8, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """(class name, montage of `per_class` random samples side by side, uint8) per class."""
    p, rng = pool(name), np.random.default_rng(seed)
    y = p.y.numpy()
    out = []
    for c, cname in enumerate(p.classes):
        members = np.flatnonzero(y == c)
        pick = rng.choice(members, size=min(per_class, len(members)), replace=False) if len(members) else []
        tiles = images(name, pick)
        if tiles:
            out.append((str(cname), np.concatenate([np.pad(t, [(1, 1), (1, 1)] + [(0, 0)] * (t.ndim - 2),
                                                           constant_values=255) for t in tiles], axis=1)))
    return out


# ---------------------------------------------------------------- forget set

def forget_spec(state: State) -> str:
    """The forget spec string of the current settings (ids:... for point-and-click)."""
    mode = state["w.forget_mode"]
    if mode == "random fraction":
        return f"random:{float(state['w.random_fraction']):g}"
    if mode == "whole classes":
        return "class:" + ",".join(str(int(c)) for c in state["w.classes"])
    if mode == "fraction of one class":
        return f"subclass:{int(state['w.sub_class'])}:{float(state['w.sub_fraction']):g}"
    return "ids:" + ",".join(str(i) for i in sorted(state["sel.ids"]))


@dataclass(frozen=True)
class ForgetCheck:
    """The resolved forget set of the current settings, or why it is invalid (`error`)."""
    spec: str
    ids: np.ndarray
    per_class: dict[str, int]
    error: str | None = None
    warning: str | None = None


def check_forget(state: State) -> ForgetCheck:
    """Resolve the current forget set; every invalid choice becomes a message, never an exception."""
    spec, name, seed = forget_spec(state), state["w.dataset"], int(state["w.seed"])
    if spec == "ids:":
        return ForgetCheck(spec, np.array([], dtype=np.int64), {}, "no sample selected yet: drag a box or lasso "
                           "on the embedding, tick rows in the table, or upload an id list")
    if spec == "class:":
        return ForgetCheck(spec, np.array([], dtype=np.int64), {}, "choose at least one class to forget")
    try:
        p = pool(name)
        split = RunConfig().split
        train, _, _ = split_pool(len(p), split.holdout, split.test, seed, p.official_test)
        ids = resolve_forget(spec, p.y.numpy(), train, p.classes, seed)
    except (ForgetSpecError, DatasetError, ValueError) as err:
        return ForgetCheck(spec, np.array([], dtype=np.int64), {}, str(err))
    counts = np.bincount(p.y.numpy()[ids], minlength=p.num_classes)
    per_class = {str(p.classes[c]): int(n) for c, n in enumerate(counts) if n}
    warning = None
    if spec.startswith("ids:") and len(ids) < 5:
        warning = "very few samples: the gaps to gold will be noisy"
    return ForgetCheck(spec, ids, per_class, None, warning)


CLUSTERED = 0.5  # spread_ratio below this: warn that the selection is far from a random request


def selection_spread(state: State, ids: np.ndarray) -> float | None:
    """tmu.twin.spread_ratio of a point-and-click selection in the embedding scatter's 2-D space,
    or None before the embedding is ready or with fewer than 2 samples."""
    from tmu.twin import spread_ratio
    job, emb = embedding(state)
    if emb is None or len(ids) < 2:
        return None
    return spread_ratio(emb["xy"], emb["labels"], np.isin(emb["ids"], ids))


def add_ids(state: State, ids) -> int:
    """Add pool ids to the point-and-click selection; returns how many were new."""
    old = set(state["sel.ids"])
    new = {int(i) for i in ids} - old
    state["sel.ids"] = sorted(old | new)
    return len(new)


def remove_ids(state: State, ids) -> None:
    drop = {int(i) for i in ids}
    state["sel.ids"] = [i for i in state["sel.ids"] if i not in drop]


def ids_from_selection(event) -> list[int]:
    """Pool ids from a plotly selection event: each point's customdata, which Streamlit may send as a
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


def parse_id_list(text: str) -> list[int]:
    """Ids from an uploaded file: integers separated by commas, spaces or new lines."""
    tokens = text.replace(",", " ").split()
    try:
        return [int(t) for t in tokens]
    except ValueError as err:
        raise ForgetSpecError(f"the id list must hold integers only ({err})") from None


def id_list_text(ids) -> str:
    return "\n".join(str(int(i)) for i in ids) + "\n"


def thumbnail_table(name: str, seed: int, cls: int | None, page: int, per_page: int = 50) -> pd.DataFrame:
    """Training samples (optionally of one class), one page: id, class, thumbnail data URI."""
    p = pool(name)
    split = RunConfig().split
    train, _, _ = split_pool(len(p), split.holdout, split.test, seed, p.official_test)
    y = p.y.numpy()
    if cls is not None:
        train = train[y[train] == cls]
    part = train[page * per_page:(page + 1) * per_page]
    return pd.DataFrame({"id": part, "class": [str(p.classes[c]) for c in y[part]],
                         "image": [data_uri(im) for im in images(name, part)]})


# ---------------------------------------------------------------- jobs and runs

_backends: dict[str, LocalBackend] = {}
_lock = threading.Lock()


def backend(root: str | Path | None = None) -> LocalBackend:
    """The process-wide job backend for a store root (default $TMU_HOME or ./runs)."""
    root = Path(root) if root is not None else default_root()
    with _lock:
        key = str(root.resolve())
        if key not in _backends:
            _backends[key] = LocalBackend(root, processes=True)
        return _backends[key]


def make_config(state: State, forget: str | None = None) -> RunConfig:
    """The RunConfig of the current settings (raises ConfigError / ValueError on a bad one)."""
    values = {"dataset": state["w.dataset"], "model": state["w.model"], "seed": int(state["w.seed"]),
              "forget": forget or forget_spec(state), "methods": list(state["w.methods"]),
              "gold_seeds": int(state["w.gold_seeds"]), "device": state["w.device"]}
    if state["w.quick"]:
        values.update(QUICK)
    return from_dict(RunConfig, values)


def device_options() -> dict[str, str]:
    """Device value -> label, from what this backend's machine has (CPU, or each GPU's name)."""
    import torch
    from tmu.models import device_label, resolve_device
    out = {"auto": f"auto ({device_label(resolve_device('auto'))})", "cpu": "CPU"}
    for i in range(torch.cuda.device_count()):
        out[f"cuda:{i}"] = f"cuda:{i} ({torch.cuda.get_device_name(i)})"
    return out


def submit_run(state: State, be: LocalBackend | None = None) -> tuple[str | None, str | None]:
    """Submit the current settings as a run job; (job id, None) or (None, error message)."""
    if not state["w.methods"]:
        return None, "choose at least one method"
    check = check_forget(state)
    if check.error:
        return None, f"invalid forget set: {check.error}"
    try:
        cfg = make_config(state)
        job_id = (be or backend()).submit(cfg)
    except (ConfigError, ValueError) as err:
        return None, str(err)
    state["job.id"] = job_id
    return job_id, None


def embedding_config(state: State) -> RunConfig:
    """The config of the embedding job: only what M_o depends on (the forget set and methods don't)."""
    return dataclasses.replace(make_config(state, forget="random:0.1"), methods=("tmu",))


def embedding(state: State, be: LocalBackend | None = None) -> tuple[JobStatus, dict | None]:
    """Submit (or find) the embedding job; its status and, once done, {ids, xy, labels}."""
    be = be or backend()
    job = be.status(be.submit(embedding_config(state), kind="embedding"))
    if job.state != DONE:
        return job, None
    return job, _load_embedding(job.out_dir)


@lru_cache(maxsize=4)
def _load_embedding(out_dir: str) -> dict:
    with np.load(Path(out_dir) / "embedding.npz") as data:
        return {k: data[k] for k in data.files}


def run_label(path: Path) -> str:
    cfg = json.loads((path / "config.json").read_text())
    return (f"{cfg['dataset']} · {cfg['forget'][:40]} · {'+'.join(cfg['methods'])} · "
            f"{cfg['gold_seeds']} gold · seed {cfg['seed']} · {path.name[:6]}")


def finished_runs(be: LocalBackend | None = None) -> list[Path]:
    return (be or backend()).finished("run")


def current_run(state: State, be: LocalBackend | None = None) -> Path | None:
    """The run the result pages show: the one picked (or just finished) in this session, else the
    newest finished one on disk (so a closed tab loses nothing)."""
    runs = finished_runs(be)
    picked = state.get("run.path")
    if picked and Path(picked) in runs:
        return Path(picked)
    return runs[0] if runs else None


@lru_cache(maxsize=4)
def _load(path: str, mtime: float):
    from tmu.runs import load_run
    return load_run(path)


def load(path: Path):
    """The LoadedRun of a run folder (cached while report.json is unchanged)."""
    return _load(str(path), (Path(path) / "report.json").stat().st_mtime)


def result_methods(lr) -> list[str]:
    return plots.method_names(lr.report)


def gold_right(lr, which: str = "forget") -> np.ndarray:
    """(n,) True where a majority of gold models classify the sample correctly."""
    y = lr.dataset.tensors[1].numpy()[lr.split[which]]
    golds = [lr.predictions[f"gold_{k}/{which}"].argmax(1) == y for k in range(lr.config.gold_seeds)]
    return np.mean(golds, 0) > 0.5


def quadrant_ids(lr, method: str) -> dict[str, np.ndarray]:
    """Forget ids per alignment quadrant of `method` against the gold majority."""
    ids = lr.split["forget"]
    y = lr.dataset.tensors[1].numpy()[ids]
    g, u = gold_right(lr), lr.predictions[f"{method}/forget"].argmax(1) == y
    return {"aligned_easy": ids[g & u], "aligned_hard": ids[~g & ~u],
            "over_forgotten": ids[g & ~u], "under_forgotten": ids[~g & u]}


def disagreement_ids(lr, method: str) -> np.ndarray:
    """Forget ids where the unlearned model and gold_0 predict different classes."""
    a = lr.predictions[f"{method}/forget"].argmax(1)
    b = lr.predictions["gold_0/forget"].argmax(1)
    return lr.split["forget"][a != b]


def predictor_arrays(lr) -> dict | None:
    """Inputs of plots.predictor_view, or None when the run has no predictor (no TMU)."""
    p = lr.predictions
    if "predictor/twin_features_scaled" not in p:
        return None
    has_forget = "predictor/forget_features_scaled" in p
    return {"twin_x": p["predictor/twin_features_scaled"], "twin_true_easy": p["predictor/twin_g"],
            "twin_pred_easy": p["predictor/twin_oof_easy"].astype(int),
            "forget_x": p["predictor/forget_features_scaled"] if has_forget else None,
            "forget_true_easy": gold_right(lr).astype(int) if has_forget else None,
            "forget_pred_easy": p["predictor/forget_easy"].astype(int) if has_forget else None,
            "features": tuple(lr.config.features.features)}


@lru_cache(maxsize=16)
def _explain(path: str, mtime: float, method: str, ids: tuple[int, ...]):
    from tmu.explain import explain
    lr = _load(path, mtime)
    x, y = lr.dataset.tensors
    idx = np.asarray(ids, dtype=np.int64)
    models = {"original": lr.models["original"], "gold": lr.models["gold_0"], method: lr.models[method]}
    return explain(models, x[idx], y[idx].numpy(), gold="gold", ids=idx)


def explain_samples(path: Path, method: str, ids) -> Any:
    """tmu.explain.Explanation of forget ids under original, gold (gold_0) and `method` (cached)."""
    return _explain(str(path), (Path(path) / "report.json").stat().st_mtime, method, tuple(int(i) for i in ids))


def compare_table(report: dict) -> pd.DataFrame:
    return pd.DataFrame(plots.compare_rows(report))


def export_html(report: dict) -> str:
    figs = {"per_class": plots.per_class_accuracy(report, "forget"), "compare": plots.compare_bars(report),
            "mia": plots.mia_figure(report)}
    figs.update({f"gaps ({m})": plots.gaps_to_gold(report, m) for m in plots.method_names(report)})
    return plots.html_report(report, figs)


def export_json(report: dict) -> str:
    return json.dumps(report, indent=2)


def export_csv(report: dict) -> str:
    return compare_table(report).to_csv(index=False)

