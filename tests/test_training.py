"""Tests for tmu.training: Part sampling, the training loop (determinism, weights, noise), predict."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tmu.config import TrainConfig
from tmu.training import Part, embed, fit, predict, train_from_scratch

CPU = torch.device("cpu")


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(epochs=1, lr=0.05, batch_size=16, momentum=0.9, weight_decay=5e-4, schedule="constant")
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


@pytest.mark.parametrize("part", [Part(np.empty(0, np.int64), np.empty(0, np.int64)),
                                  Part(np.arange(5), np.zeros(5, int), per_epoch=0)])
def test_part_draw_empty(part):
    assert len(part.draw(np.random.default_rng(0))) == 0


def test_part_draw_is_seeded():
    part = Part(np.arange(30), np.zeros(30, int), per_epoch=12)
    assert np.array_equal(part.draw(np.random.default_rng(4)), part.draw(np.random.default_rng(4)))


# ----------------------------------------------------------------------------- fit

def test_fit_is_deterministic_on_cpu(tiny):
    ids = tiny.train[:200]
    parts = [Part(ids, tiny.labels[ids]), Part(tiny.train[200:240], tiny.labels[tiny.train[200:240]], noise=0.2)]
    cfg = tiny_cfg(epochs=2, schedule="cosine")
    a = fit(tiny.build(seed=1), tiny.x, parts, cfg, device=CPU, seed=9)
    b = fit(tiny.build(seed=1), tiny.x, parts, cfg, device=CPU, seed=9)
    c = fit(tiny.build(seed=1), tiny.x, parts, cfg, device=CPU, seed=10)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert not a.training  # returned in eval mode


def test_fit_reports_progress_up_to_one(tiny):
    seen = []
    ids = tiny.train[:64]
    fit(tiny.build(seed=0), tiny.x, [Part(ids, tiny.labels[ids])], tiny_cfg(epochs=2), device=CPU, seed=0,
        progress=seen.append)
    # 64 samples / batch 16 = 4 steps per epoch, 2 epochs.
    assert seen == pytest.approx([k / 8 for k in range(1, 9)])


def test_training_lowers_the_loss_of_fitted_samples(tiny):
    ids = tiny.train[:200]
    model = tiny.build(seed=0)
    before = F.cross_entropy(torch.log(torch.as_tensor(predict(model, tiny.x, ids, device=CPU))),
                             torch.as_tensor(tiny.labels[ids]))
    fit(model, tiny.x, [Part(ids, tiny.labels[ids])], tiny_cfg(epochs=3), device=CPU, seed=0)
    after = F.cross_entropy(torch.log(torch.as_tensor(predict(model, tiny.x, ids, device=CPU))),
                            torch.as_tensor(tiny.labels[ids]))
    assert after < before


def _loss(model, tiny, ids) -> float:
    p = predict(model, tiny.x, ids, device=CPU)
    return float(-np.log(p[np.arange(len(ids)), tiny.labels[ids]]).mean())


def test_negative_weight_increases_the_loss_on_those_samples(tiny):
    model = tiny.build(seed=0)
    fit(model, tiny.x, [Part(tiny.train, tiny.labels[tiny.train])], tiny_cfg(epochs=1), device=CPU, seed=0)
    ascend, descend = tiny.holdout[:50], tiny.holdout[50:150]
    before_a, before_d = _loss(model, tiny, ascend), _loss(model, tiny, descend)
    parts = [Part(descend, tiny.labels[descend]), Part(ascend, tiny.labels[ascend], weight=-1.0)]
    fit(model, tiny.x, parts, tiny_cfg(epochs=2, lr=0.02), device=CPU, seed=0)
    assert _loss(model, tiny, ascend) > before_a
    assert _loss(model, tiny, descend) < before_d


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
    x = ((torch.arange(n, dtype=torch.float32) + 1) / (n + 2)).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    clean, noisy = np.arange(0, 5), np.arange(5, 10)
    model = Recorder()
    parts = [Part(clean, np.zeros(5, int)), Part(noisy, np.ones(5, int), noise=0.3, per_epoch=15)]
    fit(model, x, parts, tiny_cfg(epochs=2, batch_size=4), device=CPU, seed=0)
    rows = torch.cat(model.seen).flatten(1)
    constant = (rows.max(1).values - rows.min(1).values) < 1e-7
    assert int(constant.sum()) == 2 * 5 and int((~constant).sum()) == 2 * 15
    values = sorted(torch.round(rows[constant, 0] * (n + 2) - 1).long().tolist())
    assert values == sorted(list(clean) * 2)       # each clean sample once per epoch, unchanged
    assert float(rows.min()) >= 0.0 and float(rows.max()) <= 1.0  # noisy inputs are clamped


# ----------------------------------------------------------------------------- predict / embed

def test_predict_rows_are_probabilities(tiny):
    ids = tiny.test[:37]
    probs = predict(tiny.model, tiny.x, ids, device=CPU, batch_size=10)
    assert probs.shape == (37, 10) and probs.dtype == np.float32
    assert np.all(probs >= 0) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert np.allclose(probs, predict(tiny.model, tiny.x, ids, device=CPU), atol=1e-6)  # batching-invariant


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
