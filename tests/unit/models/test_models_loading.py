"""load_model over every kind of reference."""

import sys
import textwrap

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from trojanbench.errors import ConfigError, UnknownNameError
from trojanbench.models import (
    CompactResNet,
    PixelSpaceWrapper,
    load_model,
    loading,
    save_checkpoint,
    zoo_checkpoint_path,
    zoo_names,
)

KWARGS = {"num_classes": 3, "width": 2, "image_size": 16}


def _save(path):
    torch.manual_seed(0)
    net = CompactResNet(**KWARGS).eval()
    save_checkpoint(net, path, {}, architecture="compact_resnet", arch_kwargs=KWARGS)
    return net


def test_path_reference(tmp_path):
    net = _save(tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    x = torch.rand(1, 3, 16, 16)
    assert loaded.name == str(tmp_path / "m.safetensors") and len(loaded.sha256) == 64
    assert torch.equal(loaded.model(x), net(x))
    with pytest.raises(ConfigError, match="does not match"):
        load_model(str(tmp_path / "m.safetensors"), num_classes=5)


def test_zoo_names_and_did_you_mean(tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "ZOO_DIR", tmp_path)
    with pytest.raises(UnknownNameError, match="trojanbench zoo build"):
        zoo_checkpoint_path("clean")
    _save(tmp_path / "clean.safetensors")
    (tmp_path / "orphan.safetensors").write_bytes(b"")  # no card: not listed
    assert zoo_names() == ["clean"]
    assert load_model("clean").name == "clean"
    with pytest.raises(UnknownNameError, match="Did you mean: clean"):
        load_model("claen")


def test_torchvision_round_trip(tmp_path):
    torch.manual_seed(0)
    source = torchvision.models.resnet18(num_classes=16).eval()
    weights = tmp_path / "r18.safetensors"
    save_file(source.state_dict(), weights)
    loaded = load_model("torchvision:resnet18", weights=weights, num_classes=16)
    assert isinstance(loaded.model, PixelSpaceWrapper) and not loaded.model.training
    x = torch.rand(1, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), source((x - mean) / std))
    assert len(loaded.sha256) == 64 and "layer4" in loaded.model.named_layers()


def test_torchvision_unknown_name():
    with pytest.raises(UnknownNameError, match="Did you mean: resnet18"):
        load_model("torchvision:resnet81")


def test_factory_reference(tmp_path, monkeypatch):
    (tmp_path / "tb_test_factories.py").write_text(
        textwrap.dedent(
            """
            from torch import nn
            def make(num_classes=2):
                return nn.Linear(4, num_classes)
            def not_a_model():
                return 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tb_test_factories", raising=False)
    loaded = load_model("tb_test_factories:make", num_classes=5)
    assert loaded.model.out_features == 5 and loaded.sha256 == "random-init"
    weights = tmp_path / "lin.safetensors"
    save_file({"weight": torch.ones(2, 4), "bias": torch.zeros(2)}, weights)
    assert torch.equal(load_model("tb_test_factories:make", weights=weights).model.weight, torch.ones(2, 4))
    with pytest.raises(ConfigError, match="must return a torch.nn.Module"):
        load_model("tb_test_factories:not_a_model")
    with pytest.raises(UnknownNameError, match="Did you mean: tb_test_factories:make"):
        load_model("tb_test_factories:mak")
    with pytest.raises(ConfigError, match="Cannot import module"):
        load_model("tb_no_such_module_xyz:make")


def test_weights_refused_for_checkpoints(tmp_path):
    with pytest.raises(ConfigError, match="weights= applies only"):
        load_model(tmp_path / "m.safetensors", weights=tmp_path / "w.safetensors")
