"""Tests for tmu.training: Part sampling, the training loop (determinism, weights, noise, custom
losses, masks, clipping), the losses, predict and embed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tmu.config import TrainConfig
from tmu.training import (
    Batch,
    Part,
    cross_entropy,
    embed,
    fit,
    kl_to_teacher,
    predict,
    rows,
    scheduler,
    sgd,
    train_from_scratch,
    weighted_cross_entropy,
)

CPU = torch.device("cpu")


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(
        epochs=1, lr=0.05, batch_size=16, momentum=0.9, weight_decay=5e-4, schedule="constant"
    )
    return TrainConfig(**{**base, **kw})


# ----------------------------------------------------------------------------- Part


def test_part_draw_full_permutation():
    part = Part(np.arange(10, 20), np.zeros(10, int))
    pos = part.draw(np.random.default_rng(0))
    assert part.count == 10 and np.array_equal(np.sort(pos), np.arange(10))


def test_part_draw_subset_has_no_repeats():
    part = Part(np.arange(10), np.zeros(10, int), per_epoch=4)
    pos = part.draw(np.random.default_rng(0))
    assert part.count == 4 and len(pos) == 4 and len(set(pos)) == 4 and set(pos) <= set(range(10))


def test_part_draw_oversampling_repeats_evenly():
    part = Part(np.arange(10), np.zeros(10, int), per_epoch=25)
    pos = part.draw(np.random.default_rng(0))
    counts = np.bincount(pos, minlength=10)
    # 25 = two full permutations plus 5 more: every sample twice, five of them three times.
    assert len(pos) == 25 and counts.min() == 2 and counts.max() == 3 and (counts == 3).sum() == 5


@pytest.mark.parametrize(
    "part",
    [
        Part(np.empty(0, np.int64), np.empty(0, np.int64)),
        Part(np.arange(5), np.zeros(5, int), per_epoch=0),
    ],
)
def test_part_draw_empty(part):
    assert len(part.draw(np.random.default_rng(0))) == 0


def test_part_draw_is_seeded():
    part = Part(np.arange(30), np.zeros(30, int), per_epoch=12)
    assert np.array_equal(part.draw(np.random.default_rng(4)), part.draw(np.random.default_rng(4)))


# ----------------------------------------------------------------------------- fit


def test_fit_is_deterministic_on_cpu(tiny):
    ids = tiny.train[:200]
    noisy = tiny.train[200:240]
    parts = [Part(ids, tiny.labels[ids]), Part(noisy, tiny.labels[noisy], noise=0.2)]
    cfg = tiny_cfg(epochs=2, schedule="cosine")
    a = fit(tiny.build(seed=1), tiny.x, parts, cfg, device=CPU, seed=9)
    b = fit(tiny.build(seed=1), tiny.x, parts, cfg, device=CPU, seed=9)
    c = fit(tiny.build(seed=1), tiny.x, parts, cfg, device=CPU, seed=10)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert not a.training  # returned in eval mode


def fit_64_samples(tiny, **options) -> list[float]:
    """Fit 64 samples for 2 epochs (batch 16: 8 steps); the progress fractions reported."""
    seen, ids = [], tiny.train[:64]
    fit(
        tiny.build(seed=0),
        tiny.x,
        [Part(ids, tiny.labels[ids])],
        tiny_cfg(epochs=2),
        device=CPU,
        seed=0,
        progress=seen.append,
        **options,
    )
    return seen


def test_fit_reports_progress_up_to_one(tiny):
    # 64 samples / batch 16 = 4 steps per epoch, 2 epochs.
    assert fit_64_samples(tiny) == pytest.approx([k / 8 for k in range(1, 9)])


def test_fit_stops_when_the_stop_test_says_so(tiny):
    checks = []

    def stop(model):
        checks.append(model.training)
        return len(checks) == 3  # checks before step 1, after step 2, after step 4 (of 8)

    seen = fit_64_samples(tiny, stop=stop, check_every=2)
    assert seen == pytest.approx([k / 8 for k in range(1, 5)]) and checks == [False] * 3
    # a model already at its target is not trained at all
    assert fit_64_samples(tiny, stop=lambda model: True) == []


def test_training_lowers_the_loss_of_fitted_samples(tiny):
    ids = tiny.train[:200]
    model = tiny.build(seed=0)
    before = F.cross_entropy(
        torch.log(torch.as_tensor(predict(model, tiny.x, ids, device=CPU))),
        torch.as_tensor(tiny.labels[ids]),
    )
    fit(model, tiny.x, [Part(ids, tiny.labels[ids])], tiny_cfg(epochs=3), device=CPU, seed=0)
    after = F.cross_entropy(
        torch.log(torch.as_tensor(predict(model, tiny.x, ids, device=CPU))),
        torch.as_tensor(tiny.labels[ids]),
    )
    assert after < before


def _loss(model, tiny, ids) -> float:
    p = predict(model, tiny.x, ids, device=CPU)
    return float(-np.log(p[np.arange(len(ids)), tiny.labels[ids]]).mean())


def test_negative_weight_increases_the_loss_on_those_samples(tiny):
    model = tiny.build(seed=0)
    fit(
        model,
        tiny.x,
        [Part(tiny.train, tiny.labels[tiny.train])],
        tiny_cfg(epochs=1),
        device=CPU,
        seed=0,
    )
    ascend, descend = tiny.holdout[:50], tiny.holdout[50:150]
    before_a, before_d = _loss(model, tiny, ascend), _loss(model, tiny, descend)
    parts = [Part(descend, tiny.labels[descend]), Part(ascend, tiny.labels[ascend], weight=-1.0)]
    fit(model, tiny.x, parts, tiny_cfg(epochs=2, lr=0.02), device=CPU, seed=0)
    assert _loss(model, tiny, ascend) > before_a
    assert _loss(model, tiny, descend) < before_d


def constant_images(n: int, scale: int) -> torch.Tensor:
    """n 1x2x2 images, image i constant at (i + 1) / scale: a clean input identifies its id."""
    values = (torch.arange(n, dtype=torch.float32) + 1) / scale
    return values.view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()


class Recorder(nn.Module):
    """A linear model that records every training input it sees."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        if self.training:
            self.seen.append(x.detach().clone())
        return self.lin(x.flatten(1))


def test_noise_is_applied_only_to_noisy_parts():
    # Every pool image is constant (value (i + 1) / 12), so a clean input is constant and
    # identifies its id, while a noisy one is not constant.
    n = 10
    x = constant_images(n, n + 2)
    clean, noisy = np.arange(0, 5), np.arange(5, 10)
    model = Recorder()
    parts = [Part(clean, np.zeros(5, int)), Part(noisy, np.ones(5, int), noise=0.3, per_epoch=15)]
    fit(model, x, parts, tiny_cfg(epochs=2, batch_size=4), device=CPU, seed=0)
    rows = torch.cat(model.seen).flatten(1)
    constant = (rows.max(1).values - rows.min(1).values) < 1e-7
    assert int(constant.sum()) == 2 * 5 and int((~constant).sum()) == 2 * 15
    values = sorted(torch.round(rows[constant, 0] * (n + 2) - 1).long().tolist())
    assert values == sorted(list(clean) * 2)  # each clean sample once per epoch, unchanged
    assert float(rows.min()) >= 0.0 and float(rows.max()) <= 1.0  # noisy inputs are clamped


# ----------------------------------------------------------------------------- predict / embed


def test_predict_rows_are_probabilities(tiny):
    ids = tiny.test[:37]
    probs = predict(tiny.model, tiny.x, ids, device=CPU, batch_size=10)
    assert probs.shape == (37, 10) and probs.dtype == np.float32
    assert np.all(probs >= 0) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert np.allclose(
        probs, predict(tiny.model, tiny.x, ids, device=CPU), atol=1e-6
    )  # batching-invariant


def test_embed_shape(tiny):
    emb = embed(tiny.model, tiny.x, tiny.test[:5], device=CPU)
    assert emb.shape == (5, 128) and np.isfinite(emb).all()


def test_predict_and_embed_on_no_ids_keep_the_column_count(tiny):
    empty = np.empty(0, np.int64)
    assert predict(tiny.model, tiny.x, empty, device=CPU).shape == (0, 10)
    assert embed(tiny.model, tiny.x, empty, device=CPU).shape == (0, 128)


def test_trained_model_beats_chance(tiny):
    probs = predict(tiny.model, tiny.x, tiny.test, device=CPU)
    assert (probs.argmax(1) == tiny.labels[tiny.test]).mean() > 0.5


def test_train_from_scratch_is_seeded(tiny):
    ids = tiny.train[:100]
    cfg = tiny_cfg(epochs=1)
    a = train_from_scratch(tiny.build, tiny.x, tiny.labels, ids, cfg, device=CPU, seed=3)
    b = train_from_scratch(tiny.build, tiny.x, tiny.labels, ids, cfg, device=CPU, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


# ----------------------------------------------------------------------------- rows, losses, sgd


def test_rows_gathers_the_listed_rows_in_order():
    x = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1)
    for ids in (np.array([4, 0, 4]), [4, 0, 4], torch.tensor([4, 0, 4])):
        out = rows(x, ids, CPU)
        assert (
            out.shape == (3, 1, 1, 1)
            and out.device == CPU
            and out.flatten().tolist() == [4.0, 0.0, 4.0]
        )
    assert rows(x, np.empty(0, np.int64), CPU).shape == (0, 1, 1, 1)


def _hand_batch() -> tuple[nn.Module, Batch]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.rand(4, 1, 2, 2)
    return model, Batch(
        x,
        torch.tensor([0, 1, 2, 1]),
        torch.tensor([1.0, -1.0, 0.5, 2.0]),
        torch.tensor([0, 1, 0, 1]),
        0.0,
    )


@torch.no_grad()
def test_weighted_cross_entropy_is_the_weighted_sum_over_the_batch_size():
    model, batch = _hand_batch()
    ce = F.cross_entropy(model(batch.x), batch.y, reduction="none")
    want = (ce[0] - ce[1] + 0.5 * ce[2] + 2.0 * ce[3]) / 4
    assert float(weighted_cross_entropy(model, batch)) == pytest.approx(float(want), rel=1e-6)
    assert float(cross_entropy(model, batch)) == pytest.approx(
        float(ce.mean()), rel=1e-6
    )  # weights ignored


def test_kl_to_teacher():
    student = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    teacher = torch.tensor([[0.0, 1.0, 0.0], [1.0, -1.0, 2.0]])
    assert float(kl_to_teacher(teacher, teacher, 2.0)) == pytest.approx(0.0, abs=1e-7)
    for T in (1.0, 4.0):
        p, q = F.softmax(teacher / T, 1), F.softmax(student / T, 1)
        want = (p * (p.log() - q.log())).sum(1).mean()  # KL(teacher || student), batch mean
        assert float(kl_to_teacher(student, teacher, T)) == pytest.approx(float(want), rel=1e-5)
    # A higher temperature softens both sides, so they are closer.
    assert float(kl_to_teacher(student, teacher, 4.0)) < float(kl_to_teacher(student, teacher, 1.0))


def test_sgd_follows_the_recipe():
    model = nn.Linear(2, 2)
    opt = sgd(model, tiny_cfg(lr=0.3, momentum=0.5, weight_decay=0.01))
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.3, 0.5, 0.01)
    assert len(group["params"]) == 2
    assert sgd(model, tiny_cfg(), weight_decay=0.0).param_groups[0]["weight_decay"] == 0.0


def _toy(n: int = 12):
    """n constant 1x2x2 images (value (i + 1) / (n + 1)) and a linear model over them."""
    x = constant_images(n, n + 1)
    torch.manual_seed(0)
    return x, nn.Sequential(nn.Flatten(), nn.Linear(4, 3))


def test_a_custom_loss_sees_every_batch_and_drives_the_training():
    x, model = _toy()
    a, b = np.arange(0, 8), np.arange(8, 12)
    parts = [Part(a, np.full(8, 1)), Part(b, np.full(4, 2), weight=-0.5)]
    seen = []

    def always_class_0(model, batch):
        seen.append(batch)
        return F.cross_entropy(model(batch.x), torch.zeros_like(batch.y))

    fit(
        model,
        x,
        parts,
        tiny_cfg(epochs=3, batch_size=4, lr=0.5),
        device=CPU,
        seed=0,
        loss=always_class_0,
    )
    assert len(seen) == 3 * 3  # 12 samples / batch 4, 3 epochs
    assert [b.done for b in seen] == pytest.approx([k / 9 for k in range(9)])
    for batch in seen:  # each sample carries its part's fields
        ids = torch.round(batch.x[:, 0, 0, 0] * 13 - 1).long()
        in_b = ids >= 8
        assert torch.equal(batch.part, in_b.long()) and torch.equal(
            batch.y, torch.where(in_b, 2, 1)
        )
        assert torch.equal(batch.weight, torch.where(in_b, -0.5, 1.0))
    first_epoch = torch.cat([torch.round(b.x[:, 0, 0, 0] * 13 - 1) for b in seen[:3]]).long()
    assert sorted(first_epoch.tolist()) == list(range(12))  # one epoch = every sample once
    assert (
        predict(model, x, np.arange(12), device=CPU).argmax(1) == 0
    ).all()  # the loss's target won


def test_mask_freezes_the_weights_under_a_zero_even_with_weight_decay_and_momentum():
    x, model = _toy()
    lin = model[1]
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    mask_w = torch.zeros_like(lin.weight)
    mask_w[0] = 1.0  # only the first output row may move
    parts = [Part(np.arange(12), np.arange(12) % 3)]
    cfg = tiny_cfg(epochs=3, batch_size=4, lr=0.5, momentum=0.9, weight_decay=0.1)
    fit(model, x, parts, cfg, device=CPU, seed=0, mask=[mask_w, torch.zeros_like(lin.bias)])
    assert torch.equal(lin.weight[1:], w0[1:]) and torch.equal(lin.bias, b0)
    assert not torch.allclose(lin.weight[0], w0[0])


def test_mask_of_ones_applies_the_weight_decay_sgd_would():
    x, a = _toy()
    _, b = _toy()
    parts = [Part(np.arange(12), np.arange(12) % 3)]
    cfg = tiny_cfg(epochs=2, batch_size=4, lr=0.1, momentum=0.9, weight_decay=0.05)
    fit(a, x, parts, cfg, device=CPU, seed=0)
    fit(b, x, parts, cfg, device=CPU, seed=0, mask=[torch.ones_like(p) for p in b.parameters()])
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.parameters(), b.parameters()))


class NormSGD(torch.optim.SGD):
    """SGD that records the global l2 norm of the gradient it steps with."""

    def __init__(self, params, **kw):
        super().__init__(params, **kw)
        self.norms: list[float] = []

    def step(self, closure=None):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([gr.norm() for gr in grads]))))
        return super().step(closure)


@pytest.mark.parametrize("clip", [None, 0.05])
def test_clip_bounds_the_gradient_norm_of_every_step(clip):
    x, model = _toy()
    parts = [Part(np.arange(12), np.arange(12) % 3)]
    opt = NormSGD(model.parameters(), lr=0.1)
    fit(model, x, parts, tiny_cfg(epochs=2, batch_size=4), device=CPU, seed=0, opt=opt, clip=clip)
    assert len(opt.norms) == 6  # the optimizer passed in is the one used
    if clip is None:
        assert min(opt.norms) > 0.05  # so the bound below is a real cut
    else:
        assert max(opt.norms) <= clip * (1 + 1e-5)


def test_salt_changes_the_epoch_order_reproducibly():
    x, _ = _toy()
    parts = [Part(np.arange(12), np.arange(12) % 3)]

    def trained(**kw):
        _, model = _toy()
        return fit(model, x, parts, tiny_cfg(batch_size=4), device=CPU, seed=0, **kw).state_dict()

    plain, salted, again = trained(), trained(salt=1), trained(salt=1)
    assert all(torch.equal(salted[k], again[k]) for k in salted)
    assert not all(torch.equal(salted[k], plain[k]) for k in salted)


# ----------------------------------------------------------------------------- recipe options


def test_fit_on_the_cpu_is_the_plain_sgd_loop(tiny):
    """The fast path adds nothing on the CPU: fit's weights equal, bit for bit, those of a plain
    loop over the same shuffled epochs (what fit did before the fast path)."""
    ids, cfg = tiny.train[:100], tiny_cfg(epochs=2, schedule="cosine", batch_size=32)
    got = fit(tiny.build(seed=2), tiny.x, [Part(ids, tiny.labels[ids])], cfg, device=CPU, seed=4)

    model, rng = tiny.build(seed=2), np.random.default_rng(4)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 2 * 4)
    model.train()
    for _ in range(2):
        order = ids[Part(ids, tiny.labels[ids]).draw(rng)][rng.permutation(len(ids))]
        for s in range(0, len(order), 32):
            b = torch.as_tensor(order[s : s + 32])
            y = torch.as_tensor(tiny.labels[order[s : s + 32]])
            opt.zero_grad()
            ce = F.cross_entropy(model(tiny.x[b]), y, reduction="none")
            ((ce * torch.ones(len(b))).sum() / len(b)).backward()
            opt.step()
            sched.step()
    want, have = model.state_dict(), got.state_dict()
    assert all(torch.equal(want[k], have[k]) for k in want)


def test_onecycle_warms_up_to_the_peak_lr_then_decays(tiny):
    """OneCycle (Smith & Topin, 2019): lr rises linearly from lr/25 to lr over the first fifth of
    the steps, then falls linearly towards 0."""
    ids, lrs = tiny.train[:160], []
    model = tiny.build(seed=0)
    cfg = tiny_cfg(epochs=5, lr=0.2, batch_size=16, schedule="onecycle")  # 10 x 5 = 50 steps
    opt = sgd(model, cfg)

    def loss(m, batch):
        lrs.append(opt.param_groups[0]["lr"])
        return weighted_cross_entropy(m, batch)

    fit(model, tiny.x, [Part(ids, tiny.labels[ids])], cfg, device=CPU, seed=0, loss=loss, opt=opt)
    peak = int(np.argmax(lrs))
    assert len(lrs) == 50 and lrs[peak] == pytest.approx(0.2)
    assert 5 <= peak <= 15  # mid-run: at 20 % of the steps
    assert lrs[0] == pytest.approx(0.2 / 25)
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))  # warm-up
    assert all(a > b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))  # decay
    assert lrs[-1] < 0.01
    assert opt.param_groups[0]["momentum"] == 0.9  # the recipe's momentum is not cycled


def test_schedules():
    opt = sgd(nn.Linear(2, 2), tiny_cfg())
    assert scheduler(opt, tiny_cfg(schedule="constant"), 10) is None
    assert isinstance(
        scheduler(opt, tiny_cfg(schedule="cosine"), 10), torch.optim.lr_scheduler.CosineAnnealingLR
    )


def test_label_smoothing_reaches_the_cross_entropy_losses(tiny):
    model, batch = _hand_batch()
    smooth = Batch(batch.x, batch.y, torch.ones(4), batch.part, 0.0, smoothing=0.2)
    with torch.no_grad():
        want = F.cross_entropy(model(batch.x), batch.y, label_smoothing=0.2)
        assert float(weighted_cross_entropy(model, smooth)) == pytest.approx(float(want), rel=1e-6)
        assert float(cross_entropy(model, smooth)) == pytest.approx(float(want), rel=1e-6)
    seen = []

    def loss(m, b):
        seen.append(b.smoothing)
        return weighted_cross_entropy(m, b)

    ids = tiny.train[:32]
    cfg = tiny_cfg(label_smoothing=0.1)
    fit(
        tiny.build(seed=0),
        tiny.x,
        [Part(ids, tiny.labels[ids])],
        cfg,
        device=CPU,
        seed=0,
        loss=loss,
    )
    assert seen == [0.1, 0.1]


def test_sgd_takes_nesterov_from_the_recipe():
    model = nn.Linear(2, 2)
    assert sgd(model, tiny_cfg(nesterov=True)).param_groups[0]["nesterov"] is True
    assert sgd(model, tiny_cfg()).param_groups[0]["nesterov"] is False


def test_evaluation_batches_are_padded_to_a_few_shapes_without_changing_an_output(
    tiny, monkeypatch
):
    from tmu import training

    assert [training.padded_size(n, 8192) for n in (1, 64, 65, 300, 5000, 8192)] == [
        64,
        64,
        128,
        512,
        8192,
        8192,
    ]
    assert training.padded_size(300, 256) == 256
    ids = tiny.train[:300]
    plain = training.predict(tiny.model, tiny.x, ids, device=CPU, batch_size=128)
    shapes = []
    forward = tiny.model.forward
    monkeypatch.setattr(tiny.model, "forward", lambda x: shapes.append(len(x)) or forward(x))
    monkeypatch.setattr(training, "PADDED_DEVICES", ("cpu",))  # the CUDA path, on the CPU
    padded = training.predict(tiny.model, tiny.x, ids, device=CPU, batch_size=128)
    assert shapes == [128, 128, 64]  # 300 = 128 + 128 + 44, the last padded to 64
    np.testing.assert_allclose(padded, plain, atol=1e-6)
    assert training.predict(tiny.model, tiny.x, ids[:0], device=CPU).shape == (0, 10)
