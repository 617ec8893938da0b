"""Inspection views of a finished run, every one measured against the gold model (retrained
without D_f): the library half of the dashboard's inspection pages. Pure numpy/torch.

* `matrix`: gold's predicted class x a model's predicted class on D_f (or any ids), with the
  sample ids of each cell. Read from the stored predictions; not part of `Inspection`.
* `embedding`: penultimate features of every model on one common 2-D projection.
* `cka`: layer-wise linear CKA of original and unlearned models to gold, and gold-vs-gold.
* `attack`: membership inference (loss-threshold sweep, per-class threshold, offline LiRA with
  gold as OUT references), per model, with D_f's easy and hard parts apart.
* `gap`: where the gap to gold lives: agreement and accuracy gap binned by memorisation (D_f) and
  by distance to D_f (its nearest retained and test samples: `Neighbourhood`, stored), and the
  two-sided membership score.

A job computes the `Inspection` once, after evaluation (`tmu.runs.run_to_folder`), and stores it
as `inspect.npz` in the run folder (`to_arrays` gives its keys) with its headline numbers under
`report["inspect"]` (`summary`); `tmu.load_run` reads it back as `LoadedRun.inspect`. For an older
run folder without it, `compute(run)` computes it from the loaded models.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .attack import Attacks, ClassThreshold, Lira, LossSweep, ModelAttack, attacks
from .cka import CkaTable, cka_table, linear_cka
from .embedding import Embedding, project_embeddings
from .gap import (
    GapBins,
    Neighbourhood,
    by_distance,
    by_memorisation,
    membership_gaps,
    neighbourhood,
)
from .matrix import PredictionMatrix, prediction_matrix
from .source import RunData
from .store import InspectionFormatError, need, pack, unpack

logger = logging.getLogger(__name__)

FORMAT = 1
"""Version of the `inspect.npz` layout; another version is refused (recompute instead)."""


@dataclass(frozen=True)
class Settings:
    """Sample caps and attack parameters of an inspection (the defaults keep a job's extra time
    small): points of the embedding, samples per data role for CKA, thresholds of the loss sweep,
    LiRA's false-positive rate on T, the embedding's alignment ("lstsq" or "procrustes")."""

    max_points: int = 2000
    cka_samples: int = 500
    thresholds: int = 200
    alpha: float = 0.05
    align: str = "lstsq"


@dataclass(frozen=True)
class Inspection:
    """Every stored inspection view of one run, the settings it was made with, and the seconds
    it took."""

    embedding: Embedding
    cka: CkaTable
    attacks: Attacks
    settings: Settings = field(default_factory=Settings)
    seconds: float = 0.0
    neighbourhood: Neighbourhood | None = None  # absent from a folder made before it existed

    def summary(self) -> dict:
        """JSON-able headline numbers (what `report["inspect"]` holds): CKA to gold per block
        (mean over gold seeds) and its noise floor, the embedding's alignment quality, and every
        attack's AUC and member rates, easy/hard apart."""
        c = self.cka

        def per_set(s: str) -> dict:
            floor = c.noise_floor(s)
            return {
                "vs_gold": {m: _floats(row) for m, row in zip(c.models, c.vs_gold(s))},
                "noise_floor": _floats(floor) if floor is not None else None,
            }

        e = self.embedding
        return {
            "seconds": self.seconds,
            "settings": asdict(self.settings),
            "cka": {"layers": list(c.layers), **{s: per_set(s) for s in c.sets}},
            "embedding": {
                "points": len(e.ids),
                "align": e.align,
                "explained": _floats(e.explained),
                "fit_r2": dict(zip(e.models, _floats(e.fit_r2))),
            },
            "attack": self.attacks.summary(),
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The flat arrays of `inspect.npz`: `format`, `seconds`, `settings/*`, `embedding/*`,
        `cka/*` (`cka/ids/SET`), `attack/*` and per model index i (in `attack/models` order)
        `attack/i/sweep/*`, `attack/i/per_class/*`, `attack/i/lira/*` (absent without LiRA),
        `attack/i/forget_loss`."""
        a = self.attacks
        out = {"format": np.asarray(FORMAT), "seconds": np.asarray(self.seconds)}
        out |= pack(self.settings, "settings")
        out |= pack(self.embedding, "embedding") | pack(self.cka, "cka")
        out |= pack(a, "attack", skip=("views",))
        for i, v in enumerate(a.views):
            out |= pack(v, f"attack/{i}", skip=("sweep", "per_class", "lira"))
            out |= pack(v.sweep, f"attack/{i}/sweep") | pack(v.per_class, f"attack/{i}/per_class")
            out |= pack(v.lira, f"attack/{i}/lira") if v.lira is not None else {}
        if self.neighbourhood is not None:
            out |= pack(self.neighbourhood, "neighbourhood")
        return out

    @classmethod
    def from_arrays(cls, arrays) -> Inspection:
        """Rebuild from `to_arrays`' arrays (e.g. an open `np.load`); InspectionFormatError for a
        missing key or another format version."""
        version = int(need(arrays, "format"))
        if version != FORMAT:
            raise InspectionFormatError(f"format {version}, this version reads format {FORMAT}")
        names = tuple(str(m) for m in need(arrays, "attack/models"))
        views = []
        for i in range(len(names)):
            p = f"attack/{i}"
            lira = unpack(Lira, arrays, f"{p}/lira") if f"{p}/lira/auc" in arrays else None
            views.append(
                unpack(
                    ModelAttack,
                    arrays,
                    p,
                    sweep=unpack(LossSweep, arrays, f"{p}/sweep"),
                    per_class=unpack(ClassThreshold, arrays, f"{p}/per_class"),
                    lira=lira,
                )
            )
        return cls(
            unpack(Embedding, arrays, "embedding"),
            unpack(CkaTable, arrays, "cka"),
            unpack(Attacks, arrays, "attack", views=tuple(views)),
            unpack(Settings, arrays, "settings"),
            float(need(arrays, "seconds")),
            unpack(Neighbourhood, arrays, "neighbourhood")
            if "neighbourhood/ids" in arrays
            else None,
        )


def _floats(values) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def inspect_data(data: RunData, settings: Settings | None = None) -> Inspection:
    """Every stored view of `data` (forward passes batched on `data.device`)."""
    settings = settings or Settings()
    start = time.perf_counter()
    embedding = project_embeddings(data, max_points=settings.max_points, align=settings.align)
    table = cka_table(data, max_samples=settings.cka_samples)
    att = attacks(data, n_thresholds=settings.thresholds, alpha=settings.alpha)
    near = neighbourhood(data)
    seconds = time.perf_counter() - start
    logger.info("inspection views: %.1f s", seconds)
    return Inspection(embedding, table, att, settings, seconds, near)


def compute(run, *, device: str = "cpu", settings: Settings | None = None) -> Inspection:
    """The inspection of a loaded run folder (`tmu.load_run(path)`), computed now from its
    models and stored predictions: the fallback for a folder without `inspect.npz`."""
    return inspect_data(RunData.from_loaded(run, device), settings)


def get(run, *, device: str = "cpu", settings: Settings | None = None) -> Inspection:
    """`run.inspect` when the folder stored one, else `compute(run)`."""
    stored = getattr(run, "inspect", None)
    return stored if stored is not None else compute(run, device=device, settings=settings)


__all__ = [
    "Attacks",
    "CkaTable",
    "Embedding",
    "GapBins",
    "Neighbourhood",
    "by_distance",
    "by_memorisation",
    "membership_gaps",
    "neighbourhood",
    "Inspection",
    "InspectionFormatError",
    "ModelAttack",
    "PredictionMatrix",
    "RunData",
    "Settings",
    "attacks",
    "cka_table",
    "compute",
    "get",
    "inspect_data",
    "linear_cka",
    "prediction_matrix",
    "project_embeddings",
]
