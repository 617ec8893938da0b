"""CF: loss under a briefly trained curriculum model (method spec §4)."""

from __future__ import annotations

import numpy as np

from ..training import predict
from .context import FeatureContext


def curriculum_feature(ctx: FeatureContext) -> np.ndarray:
    """Per-sample cross-entropy under M_c, a fresh network trained 1-2 epochs on D ∪ H_f:
    samples it has not learnt yet (high loss) are learnt late, i.e. hard."""
    probs = predict(ctx.curriculum, ctx.x, ctx.query, device=ctx.device)
    p_true = probs[np.arange(len(ctx.query)), ctx.labels[ctx.query]]
    return -np.log(np.clip(p_true.astype(np.float64), 1e-12, 1.0))
