"""Retrain: train from scratch on the retain set; the gold standard it all aims at."""

from __future__ import annotations

from ..config import TrainConfig
from ..training import train_from_scratch
from .base import Method


class Retrain(Method):
    """Retraining from scratch on D_r with the original's recipe (the gold model M_g)."""

    name = "retrain"
    description = "Retrain from scratch on the retain set (the gold model; the costly reference)."
    defaults = {
        "epochs": TrainConfig.epochs,
        "lr": TrainConfig.lr,
        "batch_size": TrainConfig.batch_size,
    }

    def _unlearn(self, original, problem, env):
        cfg = TrainConfig(
            epochs=int(self.params["epochs"]),
            lr=float(self.params["lr"]),
            batch_size=int(self.params["batch_size"]),
        )
        return train_from_scratch(
            env.build,
            problem.x,
            problem.labels,
            problem.retain,
            cfg,
            device=env.device,
            seed=env.seed,
            progress=env.progress,
        )
