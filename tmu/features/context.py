"""What a feature needs to look at: the model in the original role, the pool, and the sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..config import FeatureConfig


@dataclass(frozen=True)
class FeatureContext:
    """query: the forget ids to describe; reference: the retained training ids of the same model
    (D_r for M_o, D for M_t); curriculum: the curriculum model M_c; labels: (N,) true classes.
    reference_embedding saves re-embedding the reference set on every request (it only depends
    on the model, so the pipeline computes it once per original model)."""

    model: nn.Module
    curriculum: nn.Module
    x: torch.Tensor
    labels: np.ndarray
    query: np.ndarray
    reference: np.ndarray
    device: torch.device
    config: FeatureConfig = FeatureConfig()
    reference_embedding: np.ndarray | None = None  # model.embed of `reference`, when already known
    leave_one_out: bool = False  # the query ids are in `reference` too: each leaves itself out
