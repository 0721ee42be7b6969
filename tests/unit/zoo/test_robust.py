"""The robust observer: its per-kind loss, the attack it trains on, a tiny build, loading, and its robustness."""

from __future__ import annotations

import pytest
import torch

from trojanbench.adversarial import linf_pgd
from trojanbench.errors import CheckpointError
from trojanbench.models import read_card
from trojanbench.trojans.training import TrainConfig
from trojanbench.world import ConceptKind
from trojanbench.zoo.observer import CONCEPTS
from trojanbench.zoo.robust import (KINDS, TRAIN_EPSILON, ConvMixer, adversarial_examples, build_robust_observer,
                                    kind_columns, kind_log_probabilities, load_robust_observer, none_column,
                                    robust_loss)
from weights import assert_same_weights

N_OUTPUTS = len(CONCEPTS) + len(KINDS)


def _targets(*shown: str) -> torch.Tensor:
    targets = torch.zeros(1, len(CONCEPTS))
    targets[0, [CONCEPTS.index(name) for name in shown]] = 1
    return targets


def _confident(targets: torch.Tensor, scale: float = 30.0) -> torch.Tensor:
    """Logits that put (nearly) all of each kind's mass where ``targets`` say, "none" where they show nothing."""
    logits = torch.zeros(len(targets), N_OUTPUTS)
    logits[:, :len(CONCEPTS)] = scale * targets
    for kind in KINDS:
        logits[:, none_column(kind)] = scale * (targets[:, kind_columns(kind)].sum(1) == 0).float()
    return logits


def test_the_loss_is_one_cross_entropy_per_kind_with_none_where_nothing_of_the_kind_is_shown():
    shown = _targets("circle", "smiley")  # an object and an icon; no texture, no secondary object
    assert robust_loss(_confident(shown), shown).item() == pytest.approx(0.0, abs=1e-6)
    # uniform logits: each kind's softmax over its concepts and "none" costs log(n + 1)
    expected = sum(torch.log(torch.tensor(len(kind_columns(kind)) + 1.0)) for kind in KINDS)
    assert robust_loss(torch.zeros(1, N_OUTPUTS), shown).item() == pytest.approx(expected.item(), rel=1e-5)
    # claiming a texture that is not there is penalised; "none" of it is what was wanted
    wrong = _confident(shown)
    wrong[0, CONCEPTS.index("jaguar")] = 60.0
    assert robust_loss(wrong, shown) > 20
    # two icons shown: the wanted mass is shared evenly, so even the best guess costs that split's entropy, log 2
    both = _targets("circle", "smiley", "sun")
    assert robust_loss(_confident(both), both).item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), rel=1e-4)
    assert robust_loss(_confident(_targets("circle", "smiley")), both) > 10


def test_kind_log_probabilities_end_with_none():
    logits = torch.zeros(2, N_OUTPUTS)
    logits[:, none_column(ConceptKind.ICON)] = 5.0
    log_p = kind_log_probabilities(logits, ConceptKind.ICON)
    assert log_p.shape == (2, len(kind_columns(ConceptKind.ICON)) + 1)
    assert torch.allclose(log_p.exp().sum(1), torch.ones(2)) and (log_p.argmax(1) == log_p.shape[1] - 1).all()


def test_pgd_stays_in_its_ball_and_in_pixel_range_and_raises_its_objective():
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    weights = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(1))

    def objective(x):
        return (x * weights).sum()

    for generator in (None, torch.Generator().manual_seed(2)):
        moved = linf_pgd(images, objective, 4 / 255, 5, generator=generator)
        assert (moved - images).abs().max() <= 4 / 255 + 1e-6 and moved.min() >= 0 and moved.max() <= 1
        assert objective(moved) > objective(images) and not moved.requires_grad
    # a linear objective is maximised at the ball's corner (unless the pixel range stops it)
    best = (images + 4 / 255 * weights.sign()).clamp(0, 1)
    assert torch.allclose(linf_pgd(images, objective, 4 / 255, 5), best, atol=1e-6)


def test_adversarial_examples_raise_the_loss_of_a_network():
    torch.manual_seed(0)
    network = ConvMixer(N_OUTPUTS, dim=16, depth=2).eval()
    images, targets = torch.rand(8, 3, 64, 64), _targets("circle").repeat(8, 1)
    moved = adversarial_examples(seed=0)(network, images, targets)
    assert (moved - images).abs().max() <= TRAIN_EPSILON + 1e-6
    assert robust_loss(network(moved), targets) > robust_loss(network(images), targets)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    config = TrainConfig(n_train=64, epochs=1, batch_size=32, lr=0.05, seed=4)
    return build_robust_observer(tmp_path_factory.mktemp("robust"), "tiny", config, n_eval=2), config


def test_tiny_build_is_deterministic_records_its_attack_and_loads_frozen(tiny_path, tmp_path):
    path, config = tiny_path
    card = read_card(path)
    assert card["architecture"] == "conv_mixer" and card["outputs"][-len(KINDS):] == [f"none:{k.value}" for k in KINDS]
    assert card["attack"] == {"norm": "linf", "epsilon": round(TRAIN_EPSILON, 6), "steps": 1}
    assert set(card["attacked_accuracy_by_kind_4_255"]) == {k.value for k in KINDS}
    assert_same_weights(build_robust_observer(tmp_path, "tiny", config, n_eval=2), path)
    network = load_robust_observer(path)
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    assert network(torch.rand(2, 3, 64, 64)).shape == (2, N_OUTPUTS)


def test_missing_robust_observer_says_how_to_build_it(tmp_path):
    with pytest.raises(CheckpointError, match="zoo build --only robust"):
        load_robust_observer(tmp_path / "robust.safetensors")
