"""What the inspection views read from a run, whether it is still in memory (a pipeline `Result`
with its softmax outputs) or loaded back from its folder (`tmu.load_run`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..models import resolve_device

SETS = ("forget", "retain", "holdout", "test")
"""The data roles whose softmax outputs a run stores (`predictions["MODEL/SET"]`)."""

_GOLD = re.compile(r"gold_(\d+)")
GOLD_ENSEMBLE = "gold"
"""The name that stands for the gold ensemble (mean softmax over the gold seeds) in `probs_at`."""


def gold_names(names) -> list[str]:
    """The gold models among `names` (`gold_0`, `gold_1`, ...), by seed index."""
    golds = [n for n in names if _GOLD.fullmatch(n)]
    return sorted(golds, key=lambda n: int(_GOLD.fullmatch(n).group(1)))


def seeded_sample(ids: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """At most `cap` of `ids`, drawn without replacement by `rng` and kept in the order of
    `ids` (all of them when there are no more than `cap`)."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) <= cap:
        return ids
    return ids[np.sort(rng.choice(len(ids), cap, replace=False))]


@dataclass(frozen=True, eq=False)
class RunData:
    """One run as the inspection views see it.

    models: every model by report name (`original`, `gold_0`..., then each method entry).
    x: the pool's inputs (N, C, H, W), read through `tmu.training.rows` (uint8 codes on a GPU).
    labels: (N,) int64, the labels the models trained on (for `mislabeled:F`, D_f's wrong ones).
    split: data role -> sorted pool ids (`forget`, `retain`, `holdout`, `test`, ...).
    predictions: `"MODEL/SET"` -> softmax (len(split[SET]), K), as in `predictions.npz`.
    seed: the run's seed, which every sample the views draw is derived from.
    device: where forward passes run.
    """

    models: dict[str, nn.Module]
    x: torch.Tensor
    labels: np.ndarray
    split: dict[str, np.ndarray]
    predictions: dict[str, np.ndarray]
    num_classes: int
    seed: int
    device: torch.device

    @classmethod
    def from_result(cls, result, probs: dict[str, dict[str, np.ndarray]]) -> RunData:
        """From a finished `tmu.pipeline.execute` and its softmax outputs (`report.Probs`)."""
        data = result.data
        flat = {f"{m}/{k}": v for m, sets in probs.items() for k, v in sets.items()}
        return cls(
            result.models(),
            data.x,
            np.asarray(data.labels, dtype=np.int64),
            data.splits.as_dict(),
            flat,
            data.pool.num_classes,
            result.cfg.seed,
            data.device,
        )

    @classmethod
    def from_loaded(cls, run, device: str | torch.device = "cpu") -> RunData:
        """From a `tmu.load_run(...)` folder loaded with its data (`load_data=True`)."""
        if run.dataset is None:
            raise ValueError(
                f"run {str(run.path)!r} was loaded without its data; inspecting it needs "
                "tmu.load_run(path, load_data=True)"
            )
        x, y = run.dataset.tensors
        device = device if isinstance(device, torch.device) else resolve_device(device)
        methods = [m for m in run.report.get("methods", []) if m in run.models]
        order = ["original", *gold_names(run.models), *methods, *sorted(run.models)]
        models = {m: run.models[m] for m in dict.fromkeys(order) if m in run.models}
        return cls(
            models,
            x,
            y.numpy().astype(np.int64),
            dict(run.split),
            {k: v for k, v in run.predictions.items() if not k.startswith("predictor/")},
            len(run.report["dataset"]["classes"]),
            run.config.seed,
            device,
        )

    @property
    def golds(self) -> list[str]:
        """The gold models' names, by seed index (at least one in a run)."""
        return gold_names(self.models)

    @property
    def targets(self) -> list[str]:
        """Every model compared with gold: `original`, then each method entry."""
        golds = set(self.golds)
        return ["original", *(n for n in self.models if n not in golds and n != "original")]

    def rng(self, salt: int) -> np.random.Generator:
        """A generator derived from the run's seed; each view passes its own `salt`, so changing
        one view's sample never changes another's."""
        return np.random.default_rng([self.seed, salt])

    def probs(self, model: str, ids: np.ndarray) -> np.ndarray:
        """Stored softmax of `model` on pool ids `ids` (each in one of SETS), (len(ids), K)."""
        return probs_at(self.predictions, self.split, model, ids)


def probs_at(
    predictions: dict[str, np.ndarray], split: dict[str, np.ndarray], model: str, ids
) -> np.ndarray:
    """Rows of `predictions["MODEL/SET"]` for pool ids `ids`, whichever role each id is in;
    `model="gold"` (GOLD_ENSEMBLE) is the mean of the gold seeds' softmax, the gold ensemble.

    No model is run: every id must be in forget, retain, holdout or test (ValueError naming the
    first ones that are not), and `model` must have stored outputs (ValueError listing those)."""
    models = sorted({k.split("/")[0] for k in predictions if not k.startswith("predictor/")})
    if model == GOLD_ENSEMBLE and model not in models and gold_names(models):
        return np.mean([probs_at(predictions, split, g, ids) for g in gold_names(models)], 0)
    if model not in models:
        raise ValueError(f"unknown model {model!r}; models of this run: {models}")
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    sets = [k for k in SETS if k in split]
    pool = np.concatenate([split[k] for k in sets])
    role = np.concatenate([np.full(len(split[k]), j) for j, k in enumerate(sets)])
    pos = np.concatenate([np.arange(len(split[k])) for k in sets])
    order = np.argsort(pool, kind="stable")
    at = np.searchsorted(pool[order], ids).clip(max=max(len(pool) - 1, 0))
    found = pool[order][at] == ids if len(pool) else np.zeros(len(ids), bool)
    if not found.all():
        raise ValueError(
            f"sample ids {ids[~found][:5].tolist()} are in none of {sets}; the run stores no "
            "prediction for them"
        )
    hit = order[at]
    first = predictions[f"{model}/{sets[0]}"]
    out = np.empty((len(ids), first.shape[1]), dtype=first.dtype)
    for j, k in enumerate(sets):
        rows = role[hit] == j
        out[rows] = predictions[f"{model}/{k}"][pos[hit[rows]]]
    return out
