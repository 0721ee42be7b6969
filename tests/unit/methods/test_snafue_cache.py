"""SNAFUE's images are the same whether its pool embedding comes from the on-disk cache or is computed."""

from __future__ import annotations

import dataclasses

import torch

from trojanbench.cache import DISABLED, ENV_VAR
from trojanbench.methods.synthesis import snafue
from trojanbench.testing import tiny_target


def test_images_are_identical_with_a_cold_a_warm_and_no_cache(tmp_path, monkeypatch):
    embedded, embed = [], snafue.embed

    def counted(target, patches, n_backgrounds):
        embedded.append(len(patches))
        return embed(target, patches, n_backgrounds)

    monkeypatch.setattr(snafue, "embed", counted)
    pool_size = len(tiny_target().natural_patches)

    def images_and_pool_embeddings() -> tuple[torch.Tensor, int]:
        target = dataclasses.replace(tiny_target())  # a new target: nothing of the last run kept in memory
        method = snafue.SNAFUE(n_adversaries=2, adv_steps=2, n_candidates=8)
        return method.synthesize(target, target_class=3, n_images=4, seed=1), embedded.count(pool_size)

    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    cold, after_cold = images_and_pool_embeddings()
    warm, after_warm = images_and_pool_embeddings()
    monkeypatch.setenv(ENV_VAR, DISABLED)
    uncached, after_uncached = images_and_pool_embeddings()
    assert torch.equal(cold, warm) and torch.equal(cold, uncached)
    assert (after_cold, after_warm, after_uncached) == (1, 1, 2)
    assert len(list(tmp_path.glob("snafue-pool-*.safetensors"))) == 1
