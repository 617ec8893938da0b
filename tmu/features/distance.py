"""DF: distance of a sample to its class in the model's embedding space (method spec §4)."""

from __future__ import annotations

import numpy as np
import torch

from ..training import embed
from .context import FeatureContext


def knn_class_distance(
    query_emb: np.ndarray,
    query_labels: np.ndarray,
    ref_emb: np.ndarray,
    ref_labels: np.ndarray,
    k: int,
    leave_one_out: bool = False,
) -> np.ndarray:
    """Mean L2 distance from each L2-normalised query embedding to its k nearest same-class
    references (fewer when the class has fewer than k references; NaN-free: a class with no
    reference gets the largest possible distance, 2). With `leave_one_out` every query is one of
    the references and its nearest (itself) is skipped."""
    q = torch.nn.functional.normalize(torch.as_tensor(query_emb, dtype=torch.float32), dim=1)
    r = torch.nn.functional.normalize(torch.as_tensor(ref_emb, dtype=torch.float32), dim=1)
    out = np.full(len(q), 2.0)
    for c in np.unique(query_labels):
        qi, ri = np.flatnonzero(query_labels == c), np.flatnonzero(ref_labels == c)
        if len(ri) == 0:
            continue
        d = torch.cdist(q[qi], r[ri])
        skip = int(leave_one_out)
        if len(ri) <= skip:
            continue
        nearest = d.topk(min(k + skip, len(ri)), dim=1, largest=False).values[:, skip:]
        out[qi] = nearest.mean(dim=1).numpy()
    return out


def distance_feature(ctx: FeatureContext) -> np.ndarray:
    """DF: far from the k nearest retained samples of its own class = hard."""
    q = embed(ctx.model, ctx.x, ctx.query, device=ctx.device)
    r = ctx.reference_embedding
    if r is None:
        r = embed(ctx.model, ctx.x, ctx.reference, device=ctx.device)
    return knn_class_distance(
        q, ctx.labels[ctx.query], r, ctx.labels[ctx.reference], ctx.config.k, ctx.leave_one_out
    )
