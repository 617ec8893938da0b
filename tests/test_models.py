"""Tests for tmu.models: the model registry (shapes, embed + head == forward) and device
resolution."""

from __future__ import annotations

import pytest
import torch

from tmu.config import RunConfig, TrainConfig, from_dict
from tmu.models import (
    RECIPES,
    MODELS,
    DeviceError,
    ResNet9,
    apply_recipe,
    build_model,
    clone_model,
    device_label,
    resolve_device,
)

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
CASES = [
    (name, shape)
    for name in sorted(MODELS)
    for shape in SHAPES
    if name != "resnet18" or shape == (3, 32, 32)
]  # resnet18 is the CIFAR model


@pytest.mark.parametrize(
    "name,shape", CASES, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in CASES]
)
def test_every_model_builds_and_embed_plus_head_is_forward(name, shape):
    model = build_model(name, shape[0], 7, seed=0).eval()
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out, emb = model(x), model.embed(x)
        assert out.shape == (2, 7)
        assert emb.ndim == 2 and emb.shape[0] == 2
        assert torch.allclose(model.head(emb), out, atol=1e-6)
    assert isinstance(model.head, torch.nn.Linear) and model.head.out_features == 7
    assert isinstance(model.cam_layer, torch.nn.Module)


def test_build_model_is_seeded():
    a, b, c = (
        build_model("cnn", 1, 10, seed=3),
        build_model("cnn", 1, 10, seed=3),
        build_model("cnn", 1, 10, seed=4),
    )
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_unknown_model():
    with pytest.raises(
        ValueError, match=r"unknown model 'vgg'; valid models: \['cnn', 'resnet18', 'resnet9'\]"
    ):
        build_model("vgg", 1, 10)


def test_clone_model_has_its_own_parameters():
    model = build_model("cnn", 1, 10, seed=0)
    copy = clone_model(model)
    with torch.no_grad():
        next(copy.parameters()).add_(1.0)
    assert not torch.equal(next(copy.parameters()), next(model.parameters()))


# ----------------------------------------------------------------------------- devices


def test_cpu_and_auto_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")
    assert device_label(torch.device("cpu")) == "CPU"


@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_gpu_is_a_device_error(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(
        DeviceError, match=rf"device '{name}' was asked for but this machine has no CUDA GPU"
    ):
        resolve_device(name)


def test_cuda_index_beyond_the_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(
        DeviceError, match=r"device 'cuda:3' does not exist; this machine has 1 GPU"
    ):
        resolve_device("cuda:3")


@pytest.mark.parametrize(
    "name,message",
    [
        ("cuda:x", "is malformed"),
        ("cuda:", "is malformed"),
        ("tpu", "unknown device 'tpu'"),
        ("CPU", "unknown device 'CPU'"),
    ],
)
def test_malformed_device(name, message):
    with pytest.raises(DeviceError, match=message):
        resolve_device(name)


def test_device_error_is_a_value_error():
    assert issubclass(DeviceError, ValueError)


# ----------------------------------------------------------------------------- resnet9, recipes


@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_resnet9_embed_is_its_last_width_and_head_is_scaled(shape):
    model = build_model("resnet9", shape[0], 10, seed=0).eval()
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        emb, out = model.embed(x), model(x)
        assert emb.shape == (3, 512) and out.shape == (3, 10)
        assert torch.equal(model.head(emb), out)
        # the head is a bias-free linear map scaled by 1/8 (Page's ResNet-9)
        assert model.head.bias is None
        assert torch.allclose(out, 0.125 * emb @ model.head.weight.T, atol=1e-6)
        assert model.cam_layer(model.layer2(model.layer1(model.prep(x)))).shape[:2] == (3, 512)


def test_resnet9_width_is_configurable():
    model = ResNet9(3, 4, widths=(8, 16, 16, 32)).eval()
    with torch.no_grad():
        assert model.embed(torch.rand(2, 3, 32, 32)).shape == (2, 32)
    assert sum(p.numel() for p in model.parameters()) < 60_000


def test_every_recipe_is_a_valid_train_config_and_cnn_has_none():
    assert MODELS["cnn"].recipe == {}
    for name, spec in MODELS.items():
        cfg = from_dict(TrainConfig, spec.recipe)
        assert all(getattr(cfg, k) == v for k, v in spec.recipe.items()), name
        assert spec.description
    assert from_dict(TrainConfig, MODELS["resnet9"].recipe).schedule == "onecycle"


def test_apply_recipe_fills_only_the_keys_the_user_left_unset():
    values = {"model": "resnet9", "seed": 3, "train": {"epochs": 2, "lr": 0.1}}
    out = apply_recipe(values)
    assert out["train"] == {**MODELS["resnet9"].recipe, "epochs": 2, "lr": 0.1}
    assert out["seed"] == 3 and out["model"] == "resnet9"
    assert values == {"model": "resnet9", "seed": 3, "train": {"epochs": 2, "lr": 0.1}}  # pure
    assert apply_recipe({"model": "resnet18"})["train"] == MODELS["resnet18"].recipe
    cfg = from_dict(RunConfig, out)
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.batch_size) == (2, 0.1, 512)


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"model": "cnn", "train": {"epochs": 4}},
        {"model": "vgg"},
        {"model": "resnet9", "train": 5},
    ],
    ids=["default-model", "cnn", "unknown-model", "train-not-a-dict"],
)
def test_apply_recipe_leaves_cnn_unknown_models_and_bad_train_values_alone(values):
    assert apply_recipe(values) == values


def test_the_memorising_recipe_drops_regularisation_and_quadruples_the_epochs():
    out = apply_recipe({"recipe": "memorise"})  # cnn: TrainConfig's defaults
    assert out["train"] == {"weight_decay": 0.0, "label_smoothing": 0.0, "epochs": 80}
    nine = apply_recipe({"model": "resnet9", "recipe": "memorise", "train": {"epochs": 3}})
    assert nine["train"] == {
        **MODELS["resnet9"].recipe,
        "weight_decay": 0.0,
        "label_smoothing": 0.0,
        "epochs": 3,  # the user's value wins over the recipe's 64
    }
    cfg = from_dict(RunConfig, apply_recipe({"recipe": "memorise", "train": {"lr": 0.1}}))
    assert (cfg.recipe, cfg.train.epochs, cfg.train.weight_decay, cfg.train.lr) == (
        "memorise",
        80,
        0.0,
        0.1,
    )
    assert set(RECIPES) == {"standard", "memorise"}


def test_an_unknown_recipe_is_left_for_validation_to_name():
    from tmu.pipeline import validate

    assert apply_recipe({"recipe": "forever"}) == {"recipe": "forever"}
    with pytest.raises(ValueError, match=r"unknown recipe\(s\) \['forever'\]"):
        validate(from_dict(RunConfig, {"recipe": "forever"}))
