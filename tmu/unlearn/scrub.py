"""SCRUB (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023).

A student initialised from the teacher (the original) runs, in each of its first `max_epochs`
epochs, a max-step pass over D_f (ascend KL(teacher || student)) then a min-step pass over D_r
(descend gamma * CE + alpha * KL(teacher || student)); later epochs run min-steps only, which
repair the retain accuracy the max-steps cost. KL on outputs softened by temperature T, scaled by
T^2 (the authors' DistillKL); gamma 0.99 and alpha 0.001, the weights of the authors' small-scale
code (with alpha = 1 the KL held the student at the teacher on D_r, and so on D_f too: SCRUB did
nothing to a sub-class request); one SGD optimizer across all passes and a smaller forget batch,
as in their code.

Two notes. The student starts exactly at the teacher, where the KL's gradient is zero: on a
network without batch-norm or dropout (our small CNN) the first max pass barely moves it, so the
default runs two. The ascent is unbounded and, once under way, grows exponentially (it drove the
small CNN to NaN within one pass on mnist5k), so max-step gradients are clipped to `max_grad_norm`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..models import clone_model
from ..training import Part, fit, kl_to_teacher, sgd
from .base import Method, forget_target, stage_env


def distill_kl(student_logits, teacher_logits, T: float):
    """KL(teacher || student) of the T-softened outputs, times T^2, averaged over the batch."""
    return kl_to_teacher(student_logits, teacher_logits, T) * T * T


class SCRUB(Method):
    name = "scrub"
    description = (
        "Student-teacher: max-steps push away from the original on D_f, min-steps keep it on D_r."
    )
    defaults = {
        "epochs": 3,
        "max_epochs": 2,
        "lr": 0.01,
        "alpha": 0.001,
        "gamma": 0.99,
        "T": 4.0,
        "batch_size": 64,
        "forget_batch_size": 16,
        "max_grad_norm": 1.0,
    }
    grid = [
        {"max_epochs": 1},
        {"max_epochs": 2},
        {"max_epochs": 3, "epochs": 4},
        {"max_epochs": 2, "max_grad_norm": 3.0},
    ]

    def _unlearn(self, original, problem, env):
        p = self.params
        teacher = clone_model(original).to(env.device).eval()
        student = clone_model(original).to(env.device)
        alpha, gamma, T = float(p["alpha"]), float(p["gamma"]), float(p["T"])
        epochs = int(p["epochs"])

        def max_loss(model, batch):
            with torch.no_grad():
                target = teacher(batch.x)
            return -distill_kl(model(batch.x), target, T)

        def min_loss(model, batch):
            with torch.no_grad():
                target = teacher(batch.x)
            logits = model(batch.x)
            return gamma * F.cross_entropy(logits, batch.y) + alpha * distill_kl(logits, target, T)

        f, r = problem.forget, problem.retain
        steps = {
            "max": (Part(f, problem.labels[f]), max_loss),
            "min": (Part(r, problem.labels[r]), min_loss),
        }
        passes = [
            k
            for e in range(epochs)
            for k in (("max", "min") if e < int(p["max_epochs"]) else ("min",))
        ]
        opt = sgd(student, TrainConfig(lr=float(p["lr"])))
        # Stopped at a target (SCRUB+R's rewind, as a stop): once D_f's accuracy reaches it, no
        # more max-steps; the min-steps still run, to repair what the max-steps cost on D_r.
        target = forget_target(problem, env)
        for k, kind in enumerate(passes):
            if kind == "max" and target is not None and target.reached:
                continue
            part, loss = steps[kind]
            bs = int(p["forget_batch_size"] if kind == "max" else p["batch_size"])
            recipe = TrainConfig(epochs=1, lr=float(p["lr"]), batch_size=bs, schedule="constant")
            fit(
                student,
                problem.x,
                [part],
                recipe,
                device=env.device,
                seed=env.seed,
                salt=k,
                loss=loss,
                opt=opt,
                progress=stage_env(env, k, len(passes)).progress,
                clip=float(p["max_grad_norm"]) if kind == "max" else None,
                stop=target if kind == "max" else None,
            )
        return student.eval()
