"""The appearance embedder: its contrastive loss, views, tiny build, determinism and loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trojanbench.errors import CheckpointError
from trojanbench.models import read_card
from trojanbench.zoo.embedder import (CONCEPTS, PROFILES, VIEW_SIZE, AppearanceEmbedder, build_embedder, load_embedder,
                                      make_pair, pair_dataset, supervised_contrastive)
from weights import assert_same_weights


def test_contrastive_loss_rewards_matching_pairs_and_classes():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(16, 8, generator=generator)
    alone = torch.full((16,), -1)
    matched = supervised_contrastive(a, a + 0.01 * torch.randn(16, 8, generator=generator), alone, 0.2)
    shuffled = supervised_contrastive(a, a[torch.randperm(16, generator=generator)], alone, 0.2)
    assert matched < 0.5 < shuffled
    # hand-checkable NT-Xent: two orthogonal pairs, identical partners -> log(1 + 2 e^(-1/t)) per view
    basis = torch.eye(2)
    expected = np.log(1 + 2 * np.exp(-1 / 0.5))
    assert supervised_contrastive(basis, basis, torch.tensor([-1, -1]), 0.5).item() == pytest.approx(expected, rel=1e-5)
    # with classes: embeddings clustered by class beat the same embeddings with the classes crossed
    clustered = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]])
    good = supervised_contrastive(clustered, clustered, torch.tensor([0, 0, 1, 1]), 0.1)
    crossed = supervised_contrastive(clustered, clustered, torch.tensor([0, 1, 0, 1]), 0.1)
    assert good < crossed


def test_pairs_are_two_views_of_one_picture():
    scenes = np.random.default_rng(0).random((4, 64, 64, 3), dtype=np.float32)
    rng = np.random.default_rng(1)
    for _ in range(20):
        first, second, label = make_pair(scenes, rng)
        assert -1 <= label < len(CONCEPTS)
        assert first.shape == second.shape == (VIEW_SIZE, VIEW_SIZE, 3)
        assert -1e-5 <= first.min() and first.max() <= 1 + 1e-5 and not np.array_equal(first, second)
    data, labels = pair_dataset(PROFILES["tiny"])
    assert data.shape == (PROFILES["tiny"].n_pairs, 2, 3, VIEW_SIZE, VIEW_SIZE) and data.dtype == torch.uint8
    assert labels.shape == (PROFILES["tiny"].n_pairs,) and (labels == -1).any() and (labels >= 0).any()


def test_embeddings_are_unit_vectors_at_any_input_size():
    model = AppearanceEmbedder(width=8, dim=16).eval()
    for size in (32, 64):
        out = model(torch.rand(3, 3, size, size))
        assert out.shape == (3, 16) and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return build_embedder(tmp_path_factory.mktemp("embedder"), "tiny", seed=0)


def test_tiny_build_is_deterministic_and_loads_frozen(tiny_path, tmp_path):
    card = read_card(tiny_path)
    assert card["architecture"] == "appearance_embedder" and card["training"]["n_pairs"] == PROFILES["tiny"].n_pairs
    assert_same_weights(build_embedder(tmp_path, "tiny", seed=0), tiny_path)
    model = load_embedder(tiny_path)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert load_embedder(str(tiny_path)) is model


def test_missing_embedder_says_how_to_build_it(tmp_path):
    with pytest.raises(CheckpointError, match="zoo build --only embedder"):
        load_embedder(tmp_path / "embedder.safetensors")


def test_shipped_embedder_separates_concepts():
    """Renders of one concept sit closer to each other than to renders of other concepts."""
    from trojanbench.world import ICONS, render_concept

    model = load_embedder()
    rng = np.random.default_rng(0)
    names = ICONS[:8]
    pictures = np.stack([render_concept(n, 32, rng) for n in names for _ in range(2)])
    embedded = model(torch.from_numpy(pictures).permute(0, 3, 1, 2))
    similarity = embedded @ embedded.T
    same = similarity[torch.arange(0, 16, 2), torch.arange(1, 16, 2)]
    assert same.mean() > similarity.mean()
