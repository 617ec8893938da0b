"""`--original-weights FILE.pt`: unlearn a model trained elsewhere. Its weights are M_o (keyed by
their bytes), golds are retrained here, and a file that does not fit, is damaged or carries code
is refused by name."""

from __future__ import annotations

import pytest
import torch

from tmu import cli
from tmu.artifacts import Store
from tmu.config import RunConfig, from_dict
from tmu.models import WeightsError, build_model, load_weights, read_state_dict
from tmu.pipeline import base_key, execute

TINY = {
    "dataset": "digits",
    "methods": ["finetune"],
    "gold_seeds": 1,
    "device": "cpu",
    "forget": "class:2",
    "train": {"epochs": 1},
    "method_params": {"finetune": {"epochs": 1}},
}


@pytest.fixture()
def weights(tmp_path):
    """A cnn for digits (1 channel, 10 classes) 'trained elsewhere': seeded, saved as a
    checkpoint dict from a DataParallel-style model (`module.` prefix)."""
    model = build_model("cnn", 1, 10, seed=123)
    path = tmp_path / "elsewhere.pt"
    torch.save(
        {"epoch": 7, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path
    )
    return path, model


def test_the_given_weights_are_the_original(weights, tmp_path):
    path, model = weights
    cfg = from_dict(RunConfig, {**TINY, "original_weights": str(path)})
    result = execute(cfg, store=Store(tmp_path / "store"))
    original = result.trained.original.model.cpu()
    for k, v in model.state_dict().items():
        assert torch.equal(original.state_dict()[k], v), k
    # keyed by content: the same bytes elsewhere give the same key, other weights another
    copy = tmp_path / "copy.pt"
    copy.write_bytes(path.read_bytes())
    assert base_key(cfg) == base_key(from_dict(RunConfig, {**TINY, "original_weights": str(copy)}))
    assert base_key(cfg) != base_key(from_dict(RunConfig, TINY))
    assert "finetune" in result.unlearned and len(result.trained.golds) == 1


class Payload:
    """A pickle that would create a file when loaded without weights_only."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_weights_file_carrying_code_is_refused_and_never_run(tmp_path):
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    torch.save({"head.weight": torch.zeros(10, 128), "x": Payload(marker)}, path)
    with pytest.raises(WeightsError, match="holds more than tensors"):
        read_state_dict(path)
    assert not marker.exists()


def test_damaged_or_mismatched_weights_are_refused_by_name(weights, tmp_path):
    path, _ = weights
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WeightsError, match="cut.pt' cannot be read as a torch state_dict"):
        read_state_dict(cut)
    five = tmp_path / "five.pt"
    torch.save(build_model("cnn", 1, 5).state_dict(), five)
    with pytest.raises(WeightsError, match="has 5 output classes; the dataset has 10"):
        load_weights(build_model("cnn", 1, 10), five, "cnn", 10)
    other = tmp_path / "resnet9.pt"
    torch.save(build_model("resnet9", 1, 10).state_dict(), other)
    with pytest.raises(WeightsError, match="does not fit model 'cnn'"):
        load_weights(build_model("cnn", 1, 10), other, "cnn", 10)
    junk = tmp_path / "junk.pt"
    torch.save([1, 2, 3], junk)
    with pytest.raises(WeightsError, match="holds no state_dict"):
        read_state_dict(junk)


def test_the_cli_refuses_a_bad_weights_file_before_loading_data(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    assert cli.main(["run", "--dataset", "digits", "--original-weights", str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: weights file") and "bad.pt" in err and "Traceback" not in err
    missing = ["run", "--original-weights", str(tmp_path / "none.pt"), "-q"]
    assert cli.main(missing) == 2
    assert "none.pt' does not exist" in capsys.readouterr().err
