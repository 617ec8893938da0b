"""The run folder (`--out DIR`): write it, and load it back for notebooks and the dashboard.

DIR/report.json, DIR/config.json (the run config plus the model architecture), DIR/split.json
(every index set by name), DIR/models/NAME.pt (state_dicts), DIR/predictions.npz (softmax of
every model on every set, and the predictor's features and decisions), DIR/inspect.npz (the
inspection views against gold, `tmu.inspect.Inspection.to_arrays`; absent in older folders).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from .artifacts import Store, atomic_write, load_state_dict, save_state_dict, write_json
from .config import RunConfig, from_dict, to_dict
from .data import content_fingerprint, load_dataset
from .forget import parse_forget, relabels
from .inspect import Inspection, RunData, inspect_data
from .models import build_model
from .pipeline import Result, StageProgress, execute
from .report import Probs, evaluate_result
from .splits import noisy_labels

logger = logging.getLogger(__name__)


class RunFolderError(ValueError):
    """A folder is not a complete run folder."""


def predictor_arrays(result: Result) -> dict[str, np.ndarray]:
    """The twin set's and the forget set's features and decisions, by `predictor/NAME`."""
    twin = result.twin
    if twin is None:
        return {}
    arrays = {
        "twin_features": twin.features,
        "twin_g": twin.labels,
        "twin_oof_easy": twin.predictor.oof_easy,
        "twin_oof_proba": twin.predictor.oof_proba,
        "twin_features_scaled": twin.predictor.scaler.transform(twin.features),
    }
    decisions = result.decisions
    if decisions is not None:
        arrays.update(
            forget_features=decisions.features,
            forget_proba=decisions.proba,
            forget_easy=decisions.easy,
            forget_features_scaled=twin.predictor.scaler.transform(decisions.features),
        )
    return {f"predictor/{k}": np.asarray(v) for k, v in arrays.items()}


def flip_arrays(result: Result) -> dict[str, np.ndarray]:
    """Each flipping method's flips on D_f: `NAME/flipped` (mask) and `NAME/flip_label`."""
    out = {}
    for name, u in result.unlearned.items():
        if u.flips is not None:
            out[f"{name}/flipped"], out[f"{name}/flip_label"] = map(np.asarray, u.flips)
    return out


RUN_FILES = ("config.json", "split.json", "predictions.npz", "report.json")  # + models/*.pt
REPORT_KEYS = ("models", "dataset", "methods")  # what the CLI and the dashboard read
SPLIT_KEYS = ("train", "holdout", "test", "forget", "retain")


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def write_run(
    result: Result,
    report: dict,
    probs: Probs,
    out: str | Path,
    inspection: Inspection | None = None,
) -> Path:
    """Write the run folder; every file goes through an atomic rename. `inspection`, when given,
    becomes inspect.npz (else an inspect.npz of an earlier run there is removed).

    `out` may hold an earlier run (a reused `--out`, a forced re-run of a job): its report.json,
    the completeness marker, is removed first and written last, and model files this run does not
    write are removed, so a folder with a report.json holds exactly one run. Other files are
    kept (a job folder's job.json, whatever a user keeps next to the run): the folder is not
    swapped for a fresh one."""
    out, cfg, pool = Path(out), result.cfg, result.data.pool
    (out / "report.json").unlink(missing_ok=True)
    arch = {"name": cfg.model, "in_channels": pool.in_channels, "num_classes": pool.num_classes}
    meta = {"architecture": arch}
    if fingerprint := content_fingerprint(cfg.dataset, cfg.data_root):  # "" for a registry set
        meta["data_fingerprint"] = fingerprint  # the images the run's sample ids point at
    write_json(out / "config.json", {**to_dict(cfg), **meta})
    split = {k: v.tolist() for k, v in result.data.splits.as_dict().items()}
    if result.twin is not None:
        split["twin_forget"] = result.twin.forget.tolist()
    write_json(out / "split.json", split)
    models = result.models()
    for name, model in models.items():
        save_state_dict(out / "models" / f"{name}.pt", model)
    for stale in (out / "models").glob("*.pt"):
        if stale.stem not in models:
            stale.unlink(missing_ok=True)
    arrays = (
        {f"{m}/{k}": v for m, sets in probs.items() for k, v in sets.items()}
        | predictor_arrays(result)
        | flip_arrays(result)
    )
    atomic_write(out / "predictions.npz", _npz(arrays))
    if inspection is not None:
        atomic_write(out / "inspect.npz", _npz(inspection.to_arrays()))
    else:
        (out / "inspect.npz").unlink(missing_ok=True)
    write_json(out / "report.json", report)  # last: a folder with report.json is complete
    return out


def run_to_folder(
    cfg: RunConfig,
    out: str | Path,
    *,
    store: Store | None = None,
    progress: StageProgress | None = None,
) -> dict:
    """Execute every stage of `cfg`, evaluate, compute the inspection views (`tmu.inspect`, its
    summary under `report["inspect"]`), write the run folder `out`; returns the report.
    Progress goes to `progress(stage, fraction)`, the last stage being "evaluate"."""
    report_to = progress or (lambda stage, frac: None)
    result = execute(cfg, store=store, progress=progress)
    report_to("evaluate", 0.0)
    report, probs = evaluate_result(result)
    report_to("evaluate", 0.4)
    inspection = _inspect(result, probs)
    if inspection is not None:
        report["inspect"] = inspection.summary()
    report_to("evaluate", 0.8)
    write_run(result, report, probs, out, inspection)
    report_to("evaluate", 1.0)
    return report


def _inspect(result: Result, probs: Probs) -> Inspection | None:
    """The run's inspection views, or None (logged) if they fail: they are an extra that
    `tmu.inspect.compute` can redo from the folder, never a reason to lose the trained models."""
    try:
        return inspect_data(RunData.from_result(result, probs))
    except Exception:  # noqa: BLE001 (any failure of the optional views; the traceback is logged)
        logger.exception("inspection views failed; the run folder is written without inspect.npz")
        return None


@dataclass
class LoadedRun:
    """A finished run: `.models` (name -> eval-mode module), `.split` (name -> id array),
    `.dataset` (the full pool as a torch Dataset of model-ready (x, y), y being the labels the run
    trained on: for `mislabeled:F` the forget set's wrong ones), `.report`, `.config`,
    `.predictions` (name -> array, see write_run), `.inspect` (the stored `tmu.inspect`
    Inspection; None for a folder written before it existed: `tmu.inspect.get(run)` then
    computes it)."""

    path: Path
    config: RunConfig
    report: dict
    split: dict[str, np.ndarray]
    models: dict[str, nn.Module]
    dataset: TensorDataset
    predictions: dict[str, np.ndarray]
    inspect: Inspection | None = None


def _read_json(file: Path) -> object:
    try:
        return json.loads(file.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise RunFolderError(f"{file}: cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise RunFolderError(
            f"{file}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
            "was it edited or truncated?"
        ) from None


def _need(file: Path, obj: object, keys: tuple[str, ...], where: str = "") -> dict:
    """`obj` as a dict holding every one of `keys`, else a RunFolderError naming the file."""
    if not isinstance(obj, dict):
        raise RunFolderError(f"{file}: expected a JSON object{where}, got {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise RunFolderError(f"{file}: missing key(s) {missing}{where}; was it edited by hand?")
    return obj


def load_run(path: str | Path, *, load_data: bool = True) -> LoadedRun:
    """Load a run folder written by `tmu run --out DIR`.

    A folder that is incomplete, edited or truncated raises RunFolderError naming the file and
    what is wrong with it (never a bare KeyError, BadZipFile or unpickling error)."""
    path = Path(path)
    missing = [f for f in ("report.json", "config.json", "split.json") if not (path / f).is_file()]
    if missing:
        raise RunFolderError(f"{path} is not a finished run folder: missing {missing}")
    report = _need(path / "report.json", _read_json(path / "report.json"), REPORT_KEYS)
    raw = dict(_need(path / "config.json", _read_json(path / "config.json"), ("architecture",)))
    arch = _need(
        path / "config.json",
        raw.pop("architecture"),
        ("name", "in_channels", "num_classes"),
        where=" under 'architecture'",
    )
    fingerprint = raw.pop("data_fingerprint", None)
    try:
        config = from_dict(RunConfig, raw)
    except (ValueError, TypeError) as err:  # ConfigError is a ValueError
        raise RunFolderError(f"{path / 'config.json'}: not a valid run config: {err}") from None
    split_raw = _need(path / "split.json", _read_json(path / "split.json"), SPLIT_KEYS)
    try:
        split = {k: np.asarray(v, dtype=np.int64) for k, v in split_raw.items()}
    except (ValueError, TypeError) as err:
        raise RunFolderError(f"{path / 'split.json'}: not lists of sample ids ({err})") from None
    models = {}
    for file in sorted((path / "models").glob("*.pt")):
        try:
            model = build_model(arch["name"], arch["in_channels"], arch["num_classes"])
        except (ValueError, TypeError, KeyError) as err:
            raise RunFolderError(
                f"{path / 'config.json'}: cannot build its architecture {arch}: {err}"
            ) from None
        try:
            state = load_state_dict(file)
        except Exception as err:  # truncated zip: RuntimeError; empty: EOFError; UnpicklingError
            raise RunFolderError(
                f"{file}: not a readable model state_dict ({type(err).__name__}: {err}); "
                "was it truncated?"
            ) from None
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as err:
            raise RunFolderError(
                f"{file}: does not fit the architecture {arch['name']!r} of config.json "
                f"({type(err).__name__}: {str(err).splitlines()[0]})"
            ) from None
        models[file.stem] = model.eval()
    dataset = None
    if load_data:
        if fingerprint and content_fingerprint(config.dataset, config.data_root) != fingerprint:
            raise RunFolderError(
                f"{path}: the images of {config.dataset!r} changed since this run (the dataset "
                "was replaced or edited): its sample ids no longer point at the images it "
                "unlearned; run it again"
            )
        pool = load_dataset(config.dataset, config.data_root)
        y = pool.y
        noise = config.split.label_noise
        if noise or relabels(config.forget):
            k, truth = pool.num_classes, pool.y.numpy()
            given = noisy_labels(truth, split["train"], split["holdout"], noise, config.seed, k)
            trained = parse_forget(config.forget).trained_labels(
                given, split["forget"], pool.num_classes, config.seed
            )
            y = torch.as_tensor(trained)
        dataset = TensorDataset(pool.x, y)
    preds = {}
    if (path / "predictions.npz").is_file():
        try:
            with np.load(path / "predictions.npz", allow_pickle=False) as data:
                preds = {k: data[k] for k in data.files}
        except Exception as err:  # BadZipFile, EOFError, zlib.error, a pickled ValueError
            raise RunFolderError(
                f"{path / 'predictions.npz'}: not a readable .npz archive "
                f"({type(err).__name__}: {err}); was it truncated?"
            ) from None
    return LoadedRun(path, config, report, split, models, dataset, preds, _inspection(path))


def _inspection(path: Path) -> Inspection | None:
    """The folder's inspect.npz as an Inspection; None when there is none."""
    file = path / "inspect.npz"
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as data:
            return Inspection.from_arrays({k: data[k] for k in data.files})
    except Exception as err:  # BadZipFile, EOFError, zlib.error, a missing or malformed array
        raise RunFolderError(
            f"{file}: not a readable inspection archive ({type(err).__name__}: {err}); "
            "was it truncated? Delete it to recompute with tmu.inspect.compute(run)"
        ) from None
