"""Tests for tmu.features: DF / AF / CF on hand-made models and embeddings, and the IQR scaler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from tmu.config import FeatureConfig, TrainConfig
from tmu.features import (
    FEATURES,
    FeatureContext,
    IQRScaler,
    adversarial_feature,
    compute_features,
    curriculum_feature,
    distance_feature,
)
from tmu.features.distance import knn_class_distance
from tmu.training import train_from_scratch

CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- DF hand case


def test_knn_class_distance_hand_case():
    query = np.array([[2.0, 0.0], [0.0, 5.0], [1.0, 1.0]])
    q_labels = np.array([0, 0, 1])
    # Class 0 references, after L2 normalisation: (1, 0), (0, 1), (-1, 0).
    ref = np.array([[3.0, 0.0], [0.0, 0.5], [-2.0, 0.0], [7.0, 7.0]])
    r_labels = np.array([0, 0, 0, 2])
    out = knn_class_distance(query, q_labels, ref, r_labels, k=2)
    # query 0 -> (1, 0): distances 0, sqrt 2, 2 -> two nearest mean (0 + sqrt 2) / 2.
    # query 1 -> (0, 1): distances sqrt 2, 0, sqrt 2 -> (0 + sqrt 2) / 2.
    # query 2 is class 1, which has no reference -> the largest possible distance, 2.
    assert out == pytest.approx([math.sqrt(2) / 2, math.sqrt(2) / 2, 2.0], abs=1e-6)


def test_knn_class_distance_uses_fewer_neighbours_when_the_class_is_small():
    out = knn_class_distance(
        np.array([[1.0, 0.0]]), np.array([0]), np.array([[0.0, 1.0]]), np.array([0]), k=5
    )
    assert out == pytest.approx([math.sqrt(2)], abs=1e-6)


# ----------------------------------------------------------------------------- features on a real
# model


@pytest.fixture(scope="module")
def ctx(tiny):
    curriculum = train_from_scratch(
        tiny.build,
        tiny.x,
        tiny.labels,
        np.r_[tiny.train, tiny.holdout],
        TrainConfig(epochs=1, lr=0.05, batch_size=32, schedule="constant"),
        device=CPU,
        seed=7,
    )
    return FeatureContext(
        tiny.model,
        curriculum,
        tiny.x,
        tiny.labels,
        tiny.holdout[:40],
        tiny.train,
        CPU,
        FeatureConfig(features=("DF", "AF", "CF"), k=3, pgd_eps=4 / 255, pgd_steps=3),
    )


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_each_feature_is_a_finite_non_negative_vector(ctx, name):
    out = FEATURES[name](ctx)
    assert out.shape == (40,) and out.dtype == np.float64
    assert np.isfinite(out).all() and (out >= 0).all()
    assert out.std() > 0  # it tells samples apart


def test_distance_feature_is_at_most_two(ctx):
    assert distance_feature(ctx).max() <= 2.0 + 1e-6


def test_distance_feature_uses_a_precomputed_reference_embedding(ctx):
    from dataclasses import replace

    from tmu.training import embed

    ref = embed(ctx.model, ctx.x, ctx.reference, device=CPU)
    assert distance_feature(replace(ctx, reference_embedding=ref)) == pytest.approx(
        distance_feature(ctx)
    )
    # It is really read: with every reference at the all-ones point, DF is each query's distance to
    # it.
    ones = np.ones_like(ref)
    q = embed(ctx.model, ctx.x, ctx.query, device=CPU)
    expected = np.linalg.norm(
        q / np.linalg.norm(q, axis=1, keepdims=True) - 1 / np.sqrt(ref.shape[1]), axis=1
    )
    assert distance_feature(replace(ctx, reference_embedding=ones)) == pytest.approx(
        expected, abs=1e-5
    )


def test_compute_features_stacks_columns_in_the_order_asked(ctx):
    both = compute_features(ctx, ("CF", "DF"))
    assert both.shape == (40, 2)
    assert both[:, 0] == pytest.approx(curriculum_feature(ctx))
    assert both[:, 1] == pytest.approx(distance_feature(ctx))


def test_compute_features_unknown_name(ctx):
    with pytest.raises(
        ValueError, match=r"unknown feature\(s\) \['XF'\]; valid features: \['AF', 'CF', 'DF'\]"
    ):
        compute_features(ctx, ("DF", "XF"))


# ----------------------------------------------------------------------------- CF and AF on hand
# models


class Fixed(nn.Module):
    """Ignores its input: logits = log(p) for a fixed distribution p (so softmax = p)."""

    def __init__(self, p):
        super().__init__()
        self.logits = nn.Parameter(torch.log(torch.tensor(p, dtype=torch.float32)))

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def test_curriculum_feature_is_the_loss_under_the_curriculum_model():
    x = torch.zeros(3, 1, 2, 2)
    labels = np.array([0, 1, 2])
    fixed = Fixed([0.7, 0.2, 0.1])
    ctx = FeatureContext(fixed, fixed, x, labels, np.array([2, 0, 1]), np.array([0]), CPU)
    # query ids 2, 0, 1 have labels 2, 0, 1: -ln 0.1, -ln 0.7, -ln 0.2.
    assert curriculum_feature(ctx) == pytest.approx(
        [-math.log(0.1), -math.log(0.7), -math.log(0.2)], rel=1e-5
    )


class Margin(nn.Module):
    """Two classes on 2-pixel images: logits (10 (x0 - x1), 0); the boundary is x0 = x1."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[10.0, -10.0], [0.0, 0.0]]))
            self.lin.bias.zero_()

    def embed(self, x):
        return x.flatten(1)

    def forward(self, x):
        return self.lin(x.flatten(1))


def test_adversarial_feature_is_larger_near_the_boundary():
    # Sample 0 sits on the boundary, sample 1 far on the class-0 side. A radius-0.1 L-inf attack
    # moves x0 - x1 by at most 0.2: the logit gap by 2 (from 0, p flips) vs from 10 to 8 (p stays
    # ~1).
    x = torch.tensor([[0.5, 0.5], [1.0, 0.0]]).view(2, 1, 1, 2)
    ctx = FeatureContext(
        Margin(),
        Margin(),
        x,
        np.array([0, 0]),
        np.array([0, 1]),
        np.array([1]),
        CPU,
        FeatureConfig(pgd_eps=0.1, pgd_steps=5),
    )
    af = adversarial_feature(ctx)
    assert af.shape == (2,) and (af >= 0).all()
    assert af[0] > 0.1 and af[1] < 1e-3 and af[0] > 100 * af[1]
    # Upper bound on sample 0: the attack reaches at most x = (0.4, 0.6), logits (-2, 0):
    # KL((1/2, 1/2) || softmax(-2, 0)) = 1/2 ln(1/2 / s(-2)) + 1/2 ln(1/2 / s(2)), s = sigmoid.
    s = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    bound = 0.5 * math.log(0.5 / s(-2)) + 0.5 * math.log(0.5 / s(2))
    assert af[0] <= bound + 1e-5


def test_distance_feature_without_a_same_class_reference_is_two(tiny):
    # DF on a query whose class has no reference sample is the maximal distance 2.
    ids = tiny.holdout[:10]
    ref = tiny.train[tiny.labels[tiny.train] != tiny.labels[ids[0]]]
    ctx = FeatureContext(
        tiny.model, tiny.model, tiny.x, tiny.labels, ids[:1], ref, CPU, FeatureConfig(k=3)
    )
    assert distance_feature(ctx) == pytest.approx([2.0])


# ----------------------------------------------------------------------------- IQRScaler


def test_iqr_scaler_hand_case():
    X = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0], [100.0, 5.0]])
    sc = IQRScaler().fit(X)
    # column 0: Q1 = 2, Q3 = 4, IQR = 2 -> fences [-1, 7]; clipped 1,2,3,4,7 -> min 1, max 7.
    assert sc.low_[0] == pytest.approx(-1.0) and sc.high_[0] == pytest.approx(7.0)
    assert sc.min_[0] == pytest.approx(1.0) and sc.max_[0] == pytest.approx(7.0)
    out = sc.transform(X)
    assert out[:, 0] == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6, 1])
    # column 1 is constant: no division by zero, everything maps to 0.
    assert out[:, 1] == pytest.approx([0, 0, 0, 0, 0])
    # New data is clipped to the fitted fences, then scaled with the fitted range (may leave [0,
    # 1]).
    new = sc.transform(np.array([[-5.0, 5.0], [10.0, 5.0], [4.0, 6.0]]))
    assert new[:, 0] == pytest.approx([(-1 - 1) / 6, 1.0, 0.5])
    assert np.array_equal(sc.fit_transform(X), out)


def test_iqr_scaler_custom_whisker():
    sc = IQRScaler(whisker=0.5).fit(np.array([[1.0], [2.0], [3.0], [4.0], [100.0]]))
    assert sc.low_[0] == pytest.approx(1.0) and sc.high_[0] == pytest.approx(5.0)


def test_iqr_scaler_unfitted():
    with pytest.raises(RuntimeError, match="IQRScaler is not fitted; call fit"):
        IQRScaler().transform(np.zeros((2, 3)))


def test_leave_one_out_skips_each_querys_own_reference():
    from tmu.features.distance import knn_class_distance

    emb = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [1.0, 0.0]])
    labels = np.array([0, 0, 0, 0])
    plain = knn_class_distance(emb, labels, emb, labels, k=1)
    assert np.allclose(plain, 0.0)  # each query's nearest reference is itself
    loo = knn_class_distance(emb, labels, emb, labels, k=1, leave_one_out=True)
    # sample 0's nearest other is its duplicate 3 (0); sample 1's is 2 (|(0,1)-(0.6,0.8)|)
    assert loo[0] == pytest.approx(0.0) and loo[1] == pytest.approx(np.hypot(0.6, 0.2))
    lone = knn_class_distance(emb[:1], labels[:1], emb[:1], labels[:1], k=3, leave_one_out=True)
    assert lone.tolist() == [2.0]  # alone in its class: the largest distance
