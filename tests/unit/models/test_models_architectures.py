"""CompactResNet shape, normalisation and registry checks."""

import pytest
import torch

from trojanbench.errors import ConfigError, UnknownNameError
from trojanbench.models import ARCHITECTURES, CompactResNet, build_model


@pytest.fixture
def net() -> CompactResNet:
    torch.manual_seed(0)
    return CompactResNet(num_classes=5, width=4, image_size=32).eval()


def test_forward_and_feature_shapes(net):
    x = torch.rand(3, 3, 32, 32)
    assert net(x).shape == (3, 5)
    assert net.features(x).shape == (3, 16)
    assert torch.allclose(net.fc(net.features(x)), net(x))


def test_normalisation_is_inside_the_model(net):
    """A constant 0.5 image is the normalised zero image: the model sees exactly zeros."""
    seen = {}
    net.stem[0].register_forward_pre_hook(lambda m, inp: seen.update(x=inp[0]))
    net(torch.full((1, 3, 32, 32), 0.5))
    assert torch.equal(seen["x"], torch.zeros(1, 3, 32, 32))
    assert {n for n, _ in net.named_buffers()} >= {"mean", "std"}


def test_named_layers_in_forward_order(net):
    order = []
    layers = net.named_layers()
    for name, layer in layers.items():
        layer.register_forward_hook(lambda m, i, o, name=name: order.append(name))
    net(torch.rand(1, 3, 32, 32))
    assert list(layers) == ["stem", "stage1", "stage2", "stage3", "fc"] == order


def test_registry_builds_and_suggests():
    assert isinstance(build_model("compact_resnet", num_classes=3, width=2), CompactResNet)
    assert "compact_resnet" in ARCHITECTURES
    with pytest.raises(UnknownNameError, match="Did you mean: compact_resnet"):
        build_model("compact_resnt", num_classes=3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 3, "width": 0}, "The 'width' parameter of CompactResNet must be an int in [1, inf). Got 0 instead."),
        ({"num_classes": 0}, "The 'num_classes' parameter of CompactResNet must be an int in [1, inf). Got 0 instead."),
        ({"num_classes": 2.5}, "Got 2.5 instead."),
        ({"num_classes": True}, "Got True instead."),
    ],
)
def test_bad_hyperparameters_rejected(kwargs, message):
    with pytest.raises(ConfigError) as info:
        build_model("compact_resnet", **kwargs)
    assert message in str(info.value)


def test_unknown_keyword_is_config_error():
    with pytest.raises(ConfigError, match="widht"):
        build_model("compact_resnet", num_classes=3, widht=4)
