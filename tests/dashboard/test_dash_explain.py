"""tmu.explain: map shapes, similarity to gold, all-zero maps."""

import numpy as np
import pytest
import torch

from tmu.explain import ATTRIBUTIONS, attribute, cosine_similarity, explain, is_zero
from tmu.models import build_model


@pytest.fixture(scope="module")
def models():
    a, b = build_model("cnn", 1, 10, seed=0), build_model("cnn", 1, 10, seed=1)
    zero = build_model("cnn", 1, 10, seed=2)
    with torch.no_grad():
        for p in zero.parameters():
            p.zero_()
    return {"gold": a, "other": b, "zero": zero}


def test_maps_have_input_shape(models):
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for method in ATTRIBUTIONS:
        maps = attribute(models["gold"], x, np.array([1, 2, 3]), method)
        assert maps.shape == (3, 8, 8) and np.isfinite(maps).all()


def test_similarity_to_gold_and_zero_maps(models):
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    exp = explain(models, x, np.array([0, 1]), gold="gold", ids=np.array([10, 11]))
    assert list(exp.ids) == [10, 11]
    for method in ATTRIBUTIONS:
        np.testing.assert_allclose(exp.similarity[method]["gold"], 1.0, atol=1e-6)
        assert exp.zero[method]["zero"].all()
        assert np.isnan(exp.similarity[method]["zero"]).all()
        assert not exp.zero[method]["gold"].any()


def test_several_gold_seeds_give_their_mean_map(models):
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    target = np.array([3, 4])
    exp = explain(
        {"u": models["zero"], "g0": models["gold"], "g1": models["other"]},
        x,
        target,
        gold=["g0", "g1"],
    )
    for method in ATTRIBUTIONS:
        assert list(exp.maps[method]) == ["u", "gold"]
        mean = (
            attribute(models["gold"], x, target, method)
            + attribute(models["other"], x, target, method)
        ) / 2
        np.testing.assert_allclose(exp.maps[method]["gold"], mean, atol=1e-6)


def test_cosine_and_zero_helpers():
    a = np.zeros((2, 2, 2))
    a[1, 0, 0] = 1.0
    assert list(is_zero(a)) == [True, False]
    sim = cosine_similarity(a, a)
    assert np.isnan(sim[0]) and sim[1] == pytest.approx(1.0)


def test_errors_name_the_bad_value(models):
    with pytest.raises(ValueError, match="unknown attribution method 'LIME'"):
        attribute(models["gold"], torch.rand(1, 1, 8, 8), np.array([0]), "LIME")
    with pytest.raises(ValueError, match="no gold model named 'gold_0'"):
        explain(models, torch.rand(1, 1, 8, 8), np.array([0]), gold="gold_0")
