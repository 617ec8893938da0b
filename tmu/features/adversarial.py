"""AF: how far a small L-inf PGD attack moves the prediction (method spec §4)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ..training import rows
from .context import FeatureContext


def _ce(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, target, reduction="none")


def adversarial_feature(ctx: FeatureContext, batch_size: int = 512) -> np.ndarray:
    """KL(softmax(clean) || softmax(adversarial)) under a 5-step PGD attack of radius eps
    (4/255 of the [0, 1] input range by default), step eps/3, clamped to [0, 1]. Large = fragile =
    hard."""
    model, cfg = ctx.model.to(ctx.device).eval(), ctx.config
    from captum.robust import PGD  # imported when used: captum pulls in torch._dynamo

    pgd = PGD(model, loss_func=_ce, lower_bound=0.0, upper_bound=1.0)
    out = []
    for s in range(0, len(ctx.query), batch_size):
        ids = torch.as_tensor(ctx.query[s : s + batch_size], dtype=torch.long)
        inputs = rows(ctx.x, ids, ctx.device)
        target = torch.as_tensor(ctx.labels[ids.numpy()], device=ctx.device)
        with warnings.catch_warnings():  # captum warns that it set requires_grad itself
            warnings.simplefilter("ignore", UserWarning)
            adv = pgd.perturb(
                inputs,
                radius=cfg.pgd_eps,
                step_size=cfg.pgd_eps / 3,
                step_num=cfg.pgd_steps,
                target=target,
                norm="Linf",
            )
        with torch.no_grad():
            p_log = F.log_softmax(model(inputs), dim=1)
            q_log = F.log_softmax(model(adv), dim=1)
            out.append((p_log.exp() * (p_log - q_log)).sum(dim=1).clamp_min(0).cpu())
    return torch.cat(out).numpy().astype(np.float64) if out else np.empty(0)
