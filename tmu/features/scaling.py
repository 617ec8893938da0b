"""Tukey-fence clipping and min-max scaling, fitted on the twin set only (method spec §4)."""

from __future__ import annotations

import numpy as np


class IQRScaler:
    """Clip each column to [Q1 - 1.5 IQR, Q3 + 1.5 IQR], then min-max scale with the clipped
    range seen in `fit`. Applied unchanged to new data, whose values may leave [0, 1] slightly."""

    def __init__(self, whisker: float = 1.5):
        self.whisker = whisker

    def fit(self, X: np.ndarray) -> "IQRScaler":
        X = np.asarray(X, dtype=np.float64)
        q1, q3 = np.percentile(X, 25, axis=0), np.percentile(X, 75, axis=0)
        self.low_, self.high_ = q1 - self.whisker * (q3 - q1), q3 + self.whisker * (q3 - q1)
        clipped = np.clip(X, self.low_, self.high_)
        self.min_, self.max_ = clipped.min(axis=0), clipped.max(axis=0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "min_"):
            raise RuntimeError("IQRScaler is not fitted; call fit() first")
        span = np.where(self.max_ > self.min_, self.max_ - self.min_, 1.0)
        return (np.clip(np.asarray(X, dtype=np.float64), self.low_, self.high_) - self.min_) / span

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)
