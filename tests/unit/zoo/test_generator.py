"""The patch generator of the generator-based tools: tiny build, card, loading, caching, errors."""

from __future__ import annotations

import pytest
import torch

from trojanbench.errors import CheckpointError
from trojanbench.models import read_card
from trojanbench.zoo.generator import PROFILES, PatchGenerator, build_generator, load_generator, patch_dataset
from weights import assert_same_weights


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return build_generator(tmp_path_factory.mktemp("gen"), "tiny", seed=0)


def test_build_writes_weights_and_card(tiny_path):
    assert tiny_path.name == "generator.safetensors" and tiny_path.is_file()
    card = read_card(tiny_path)
    assert card["architecture"] == "patch_generator"
    assert card["arch_kwargs"] == {"latent_dim": 64, "width": PROFILES["tiny"].width}
    training = card["training"]
    assert training["config"]["steps"] == PROFILES["tiny"].steps
    assert training["seconds"] > 0 and training["final_loss"] > 0 and 0 < training["heldout_reconstruction_mse"] < 1


def test_loaded_generator_decodes_latents_to_patches(tiny_path):
    decoder = load_generator(tiny_path)
    assert isinstance(decoder, PatchGenerator) and decoder.latent_dim == 64 and not decoder.training
    assert not any(p.requires_grad for p in decoder.parameters())
    patches = decoder(torch.randn(5, decoder.latent_dim))
    assert patches.shape == (5, 3, 32, 32) and 0 <= patches.min() and patches.max() <= 1
    offset = torch.ones(1, *decoder.feature_shape)
    assert not torch.allclose(decoder(torch.zeros(1, 64), offset), decoder(torch.zeros(1, 64)))


def test_loading_is_cached_per_path(tiny_path):
    assert load_generator(tiny_path) is load_generator(str(tiny_path))


def test_missing_generator_says_how_to_build_it(tmp_path):
    with pytest.raises(CheckpointError, match="zoo build --only generator"):
        load_generator(tmp_path / "generator.safetensors")


def test_build_is_deterministic(tiny_path, tmp_path):
    assert_same_weights(build_generator(tmp_path, "tiny", seed=0), tiny_path)


def test_training_patches_are_clean_world_crops():
    data = patch_dataset(PROFILES["tiny"])
    profile = PROFILES["tiny"]
    assert data.shape == (2 * profile.n_scenes + profile.n_sprites + profile.n_textures, 3, 32, 32)
    assert data.dtype == torch.uint8 and data.float().std() > 10


def test_shipped_generator_makes_varied_patches():
    decoder = load_generator()
    patches = decoder(torch.randn(16, decoder.latent_dim, generator=torch.Generator().manual_seed(0)))
    assert patches.std(0).mean() > 0.05  # random latents give different patches
