"""Tests for tmu.accel: the uint8 pool and its exact decoding, crop-and-flip augmentation, and
the fast-path decisions (all off on the CPU for the grayscale datasets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tmu.accel import (
    CROP_PAD,
    LEVELS,
    FastPath,
    crop_flip,
    decode,
    encode_pool,
    eval_batch_size,
    random_crop_flip,
)
from tmu.config import TrainConfig
from tmu.data import load_dataset
from tmu.models import build_model
from tmu.training import Part, fit, rows

CPU = torch.device("cpu")


def eight_bit(n: int, shape=(3, 32, 32), seed: int = 0) -> torch.Tensor:
    """float32 images k/255, scaled the way the 8-bit loaders scale them."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g).float() / 255.0


# ----------------------------------------------------------------------------- uint8 pool


def test_levels_are_the_loaders_k_over_255():
    assert LEVELS.dtype == torch.float32 and LEVELS.shape == (256,)
    assert torch.equal(LEVELS, torch.as_tensor(np.arange(256), dtype=torch.float32) / 255.0)


def test_an_8_bit_pool_becomes_uint8_and_gathers_back_exactly():
    x = eight_bit(50)
    codes = encode_pool(x)
    assert codes.dtype == torch.uint8 and codes.shape == x.shape
    assert codes.element_size() * 4 == x.element_size()
    ids = np.array([7, 0, 49, 7, 13])
    assert torch.equal(rows(codes, ids, CPU), rows(x, ids, CPU))
    assert rows(codes, ids, CPU).dtype == torch.float32
    assert torch.equal(decode(codes), x)


def test_mnist5k_is_stored_as_uint8_exactly():
    pool = load_dataset("mnist5k")
    codes = encode_pool(pool.x)
    assert codes.dtype == torch.uint8
    ids = np.arange(0, len(pool), 7)
    assert torch.equal(rows(codes, ids, CPU), pool.x[ids])


def test_digits_k_over_16_stay_float(pool):
    assert encode_pool(pool.x) is pool.x  # 0..16 / 16 is not a multiple of 1/255


@pytest.mark.parametrize(
    "bad",
    [lambda x: x + 1e-7, lambda x: x * 1.5, lambda x: x - 0.5],
    ids=["off-grid", "above-one", "negative"],
)
def test_values_that_uint8_cannot_hold_keep_the_float_pool(bad):
    x = bad(eight_bit(10, (1, 4, 4)))
    x[0, 0, 0, 0] = 0.3  # at least one value off the k/255 grid in every case
    assert encode_pool(x) is x


def test_the_check_runs_chunk_by_chunk(monkeypatch):
    monkeypatch.setattr("tmu.accel.ENCODE_CHUNK", 3)
    x = eight_bit(10, (1, 2, 2))
    assert torch.equal(decode(encode_pool(x)), x)
    x[9, 0, 0, 0] = 0.3  # off the grid in the last chunk only
    assert encode_pool(x) is x


# ----------------------------------------------------------------------------- augmentation


def reference_crop_flip(img: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    h, w = img.shape[-2:]
    out = F.pad(img, (CROP_PAD,) * 4)[:, dy : dy + h, dx : dx + w]
    return out.flip(-1) if flip else out


def test_crop_flip_is_a_shifted_zero_padded_and_mirrored_copy():
    x = torch.rand(4, 3, 6, 5, generator=torch.Generator().manual_seed(0))
    dy, dx = torch.tensor([0, 8, 4, 2]), torch.tensor([8, 0, 4, 7])
    flip = torch.tensor([False, True, True, False])
    out = crop_flip(x, dy, dx, flip)
    assert out.shape == x.shape
    for i in range(4):
        assert torch.equal(out[i], reference_crop_flip(x[i], int(dy[i]), int(dx[i]), bool(flip[i])))
    # shifted by 4 rows (dy = 0): the top 4 rows are the zero padding
    assert torch.equal(out[0, :, :4], torch.zeros(3, 4, 5))
    assert torch.equal(out[0, :, 4:, : 5 - 4], x[0, :, :2, 4:])


def test_crop_flip_at_the_centre_without_flip_is_the_identity():
    x = torch.rand(3, 1, 8, 8)
    centre = torch.full((3,), CROP_PAD)
    assert torch.equal(crop_flip(x, centre, centre, torch.zeros(3, dtype=torch.bool)), x)


def test_random_crop_flip_draws_a_shift_and_flip_per_image_from_the_generator():
    x = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    out = random_crop_flip(x, torch.Generator().manual_seed(5))
    again = random_crop_flip(x, torch.Generator().manual_seed(5))
    assert out.shape == x.shape and torch.equal(out, again)
    seen = set()
    for i in range(len(x)):
        matches = [
            (dy, dx, f)
            for dy in range(2 * CROP_PAD + 1)
            for dx in range(2 * CROP_PAD + 1)
            for f in (False, True)
            if torch.equal(out[i], reference_crop_flip(x[i], dy, dx, f))
        ]
        assert len(matches) == 1, i  # exactly one shifted / flipped copy of the input
        seen.add(matches[0])
    assert {f for _, _, f in seen} == {False, True} and len(seen) > 20


# ----------------------------------------------------------------------------- decisions


def test_on_the_cpu_nothing_is_switched_on_for_grayscale_data():
    model = build_model("cnn", 1, 10, seed=0)
    for shape in [(1, 8, 8), (1, 28, 28)]:
        fast = FastPath.resolve(TrainConfig(), CPU, torch.zeros(2, *shape), model)
        assert fast == FastPath(CPU)
    x = torch.rand(2, 1, 8, 8)
    assert FastPath(CPU).inputs(x, torch.Generator()) is x  # disabled: the batch as it came
    assert FastPath(CPU).prepare(model) is model


def test_auto_augments_colour_32x32_images_only():
    model = build_model("cnn", 3, 10, seed=0)
    colour = torch.zeros(2, 3, 32, 32)
    assert FastPath.resolve(TrainConfig(), CPU, colour, model).augment
    assert not FastPath.resolve(TrainConfig(augment="none"), CPU, colour, model).augment
    assert not FastPath.resolve(TrainConfig(), CPU, torch.zeros(2, 3, 28, 28), model).augment
    gray = torch.zeros(2, 1, 28, 28)
    assert FastPath.resolve(TrainConfig(augment="crop_flip"), CPU, gray, model).augment


def test_explicit_switches_and_the_cuda_only_ones():
    conv, linear = build_model("cnn", 1, 10, seed=0), nn.Linear(4, 2)
    x = torch.zeros(2, 1, 8, 8)
    fast = FastPath.resolve(TrainConfig(amp="bf16", channels_last="on"), CPU, x, conv)
    assert fast.amp and fast.channels_last
    assert not FastPath.resolve(TrainConfig(channels_last="on"), CPU, x, linear).channels_last
    assert not FastPath.resolve(TrainConfig(compile=True), CPU, x, conv).compile  # CUDA only
    assert eval_batch_size(CPU) == 1024 and eval_batch_size(torch.device("cuda")) == 8192


def test_bf16_autocast_runs_the_forward_in_bf16():
    model = nn.Linear(4, 2)
    with FastPath(CPU, amp=True).autocast():
        assert model(torch.rand(3, 4)).dtype == torch.bfloat16
    with FastPath(CPU).autocast():
        assert model(torch.rand(3, 4)).dtype == torch.float32


# ----------------------------------------------------------------------------- in fit


def tiny_colour_fit(x, augment: str) -> list[torch.Tensor]:
    ids = np.arange(len(x))
    labels = ids % 3
    cfg = TrainConfig(epochs=1, lr=0.05, batch_size=8, schedule="constant", augment=augment)
    model = build_model("cnn", 3, 3, seed=0)
    fit(model, x, [Part(ids, labels)], cfg, device=CPU, seed=0)
    return [p.detach().clone() for p in model.parameters()]


def test_fit_on_a_uint8_pool_equals_fit_on_the_float_pool():
    x = eight_bit(24)
    a, b = tiny_colour_fit(x, "crop_flip"), tiny_colour_fit(encode_pool(x), "crop_flip")
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_augmentation_in_fit_is_seeded_and_changes_the_training():
    x = eight_bit(24)
    auto, again, none = (tiny_colour_fit(x, a) for a in ("auto", "auto", "none"))
    assert all(torch.equal(p, q) for p, q in zip(auto, again))
    assert not all(torch.equal(p, q) for p, q in zip(auto, none))
