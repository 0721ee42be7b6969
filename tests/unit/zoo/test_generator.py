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


def test_on_a_folder_the_training_patches_are_crops_of_its_train_images(tmp_path):
    """A folder whose classes are flat colours gives flat patches of exactly those colours, from train images only."""
    import numpy as np
    from PIL import Image

    from trojanbench.data import ImageFolderData
    from trojanbench.zoo.generator import FOLDER_CROPS_PER_IMAGE, folder_patches

    colours = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 210)}
    for name, colour in colours.items():
        (tmp_path / name).mkdir()
        for i in range(30):
            Image.fromarray(np.full((40, 56, 3), colour, dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    data = ImageFolderData.open(tmp_path, image_size=32, workers=0)
    patches = folder_patches(data, PROFILES["tiny"], "train", seed=0)
    n_train = min(PROFILES["tiny"].n_scenes, len(data.files["train"]))
    assert patches.shape == (FOLDER_CROPS_PER_IMAGE * n_train, 3, 32, 32) and patches.dtype == torch.uint8
    flat = patches.flatten(2)
    assert (flat.amax(2) - flat.amin(2)).max() <= 1, "a crop of a flat image is flat"
    found = {tuple(int(v) for v in patch[:, 0]) for patch in flat}
    assert found == set(colours.values())
    assert torch.equal(folder_patches(data, PROFILES["tiny"], "train", seed=0), patches)
