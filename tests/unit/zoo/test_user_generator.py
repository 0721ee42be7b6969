"""A generator of the user's own architecture (a ``module:Class`` keeping the PatchDecoder interface), written with
``save_user_generator``, is what RFLA-Perturb, RFLA-Gen and SNAFUE search when given as ``generator_path``; one
that breaks the interface, or whose class cannot be imported, is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trojanbench.errors import CheckpointError, ConfigError
from trojanbench.methods import Target
from trojanbench.models import load_model
from trojanbench.tasks.rediscovery.synthesis import make_method
from trojanbench.zoo.generator import load_generator, save_user_generator

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture
def user_generator(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(FIXTURES))
    from user_generator import RedDecoder

    torch.manual_seed(0)
    return save_user_generator(RedDecoder(latent_dim=8), tmp_path / "red.safetensors", arch_kwargs={"latent_dim": 8})


@pytest.fixture(scope="module")
def target():
    return Target.from_model(load_model("trojaned"), n_clean=16, n_patches=16)


def test_the_card_names_the_class_and_loading_rebuilds_it(user_generator):
    decoder = load_generator(user_generator)
    assert type(decoder).__name__ == "RedDecoder" and decoder.latent_dim == 8 and not decoder.training
    patches = decoder(torch.randn(4, 8))
    assert patches.shape == (4, 3, 16, 16)


@pytest.mark.parametrize("name, params", [("rfla_perturb", {}), ("rfla_gen", {"layers": "last"}),
                                          ("rfla_gen", {"layers": "all"})])
def test_the_rfla_tools_search_the_users_generator(user_generator, target, name, params):
    method = make_method(name, {**params, "generator_path": str(user_generator)}, quick=True)
    images = method.synthesize(target, 3, 2, 0)
    assert images.shape == (2, 3, target.image_size, target.image_size)
    red, others = images[:, 0].mean(), images[:, 1:].max()  # its patches alone, upscaled: red as it makes them
    assert red >= 0.79 and others <= 0.21, (float(red), float(others))


def test_snafue_finds_natural_patches_near_the_users_adversaries(user_generator, target):
    method = make_method("snafue", {"generator_path": str(user_generator)}, quick=True)
    images = method.synthesize(target, 3, 2, 0)
    assert images.shape == (2, 3, target.image_size, target.image_size) and torch.isfinite(images).all()


def test_a_generator_that_breaks_the_interface_is_refused(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(FIXTURES))
    from user_generator import Unbounded

    with pytest.raises(CheckpointError, match="makes values outside \\[0, 1\\]"):
        save_user_generator(Unbounded(), tmp_path / "bad.safetensors")


def test_a_class_that_cannot_be_imported_is_named(user_generator, tmp_path):
    import json

    moved = tmp_path / "moved.safetensors"
    moved.write_bytes(user_generator.read_bytes())
    card = json.loads(user_generator.with_suffix(".json").read_text())
    moved.with_suffix(".json").write_text(json.dumps({**card, "architecture": "gone_module:RedDecoder"}))
    with pytest.raises(ConfigError, match="Cannot import plugin module 'gone_module'"):
        load_generator(moved)
