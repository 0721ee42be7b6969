"""The appearance judge on another embedding backbone: a timm classifier's pooled features, from a local weights
file (random-init here), at the backbone's own input size; bad settings refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from trojanbench.errors import CheckpointError, ConfigError
from trojanbench.judges import Question, get_judge
from trojanbench.judges.appearance import BACKBONE_BANK_VIEWS, AppearanceJudge
from trojanbench.world import generate_scenes

timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("backbone") / "resnet10t.safetensors"
    save_file(timm.create_model("resnet10t", pretrained=False, num_classes=7).state_dict(), path)
    return path


def test_a_timm_backbone_judges_at_its_input_size_with_its_own_banks(weights):
    judge = get_judge("appearance", {"backbone": "timm:resnet10t", "weights": str(weights)})
    question = Question("t", "style", ("marble", "jaguar", "zebra"), truth_index=0, seed=0)
    probabilities = judge.score(generate_scenes("val", 2, seed=1).images, question)
    assert probabilities.shape == (3,) and np.isclose(probabilities.sum(), 1.0)
    network = judge.embedder.network
    assert judge.window_side == network.pretrained_cfg["input_size"][-1] and judge.dim == network.num_features
    assert judge.bank("style", "marble").shape == (BACKBONE_BANK_VIEWS * 10 + 1, judge.dim)
    assert judge.provenance()["network"] == "timm:resnet10t"
    assert get_judge("appearance").settings == {} and get_judge("appearance").window_side == 32


def test_bad_backbone_settings_are_refused(weights, tmp_path):
    with pytest.raises(ConfigError, match="must be 'timm:NAME'"):
        AppearanceJudge(backbone="torchvision:resnet18", weights=str(weights))
    with pytest.raises(ConfigError, match="both a backbone"):
        AppearanceJudge(backbone="timm:resnet10t")
    with pytest.raises(CheckpointError, match="do not fit"):
        AppearanceJudge(backbone="timm:resnet18", weights=str(weights)).check()
