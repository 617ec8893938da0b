"""The three hardness features of TMU (method spec §4) and their scaler.

Each feature is a function `FeatureContext -> (n,) float array`, registered in `FEATURES`.
Features are computed under the model in the "original" role: the twin model M_t for the twin
forget set H_f, the original model M_o for the real forget set D_f.
"""

from __future__ import annotations

import numpy as np

from .adversarial import adversarial_feature
from .context import FeatureContext
from .curriculum import curriculum_feature
from .distance import distance_feature
from .scaling import IQRScaler

FEATURES = {
    "DF": distance_feature,
    "AF": adversarial_feature,
    "CF": curriculum_feature,
}


def compute_features(
    ctx: FeatureContext, names: tuple[str, ...] = ("DF", "AF", "CF")
) -> np.ndarray:
    """The (n, len(names)) raw feature matrix of `ctx.query`, columns in `names` order."""
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; valid features: {sorted(FEATURES)}")
    return np.stack([FEATURES[n](ctx) for n in names], axis=1).astype(np.float64)


__all__ = [
    "FEATURES",
    "FeatureContext",
    "IQRScaler",
    "compute_features",
    "distance_feature",
    "adversarial_feature",
    "curriculum_feature",
]
