"""What a tool gets: the audited model and what a real auditor would have beside it.

A :class:`Target` holds a frozen copy of the model (eval mode, no gradients into its weights, so
methods cannot change the audited model), its input size, class names, named layers for inner
objectives, a few hundred clean labelled images (``val`` split) and a pool of natural image patches
cropped from held-out scenes (``pool`` split) for retrieval methods. Nothing about the trojans.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..errors import ConfigError
from ..models import LoadedModel
from ..world import OBJECT_CLASSES, generate_scenes, scene_rng

DEFAULT_PATCH_SIZE = 24


@dataclass
class Target:
    """The audited model and the data an auditor has (see module docstring)."""

    model: nn.Module
    image_size: int
    class_names: tuple[str, ...]
    clean_images: torch.Tensor
    clean_labels: torch.Tensor
    natural_patches: torch.Tensor
    model_name: str = "model"
    model_sha256: str = ""
    layers: dict[str, nn.Module] = field(default_factory=dict)
    data: Any = None
    """The user's image folder the clean images come from (:class:`~trojanbench.data.ImageFolderData`); ``None``:
    the built-in world. Baselines that show the data (the oracle) draw their held-out images from it."""

    def __post_init__(self) -> None:
        if not self.layers:
            named = getattr(self.model, "named_layers", None)
            self.layers = dict(named()) if callable(named) else dict(self.model.named_children())

    @classmethod
    def from_model(cls, model: nn.Module | LoadedModel, *, n_clean: int = 300, n_patches: int = 2000,
                   patch_size: int = DEFAULT_PATCH_SIZE, seed: int = 0, image_size: int = 64) -> "Target":
        """Freeze a copy of ``model`` and gather the auditor's clean data from the built-in world."""
        name, sha = "model", ""
        if isinstance(model, LoadedModel):
            name, sha, model = model.name, model.sha256, model.model
        frozen = copy.deepcopy(model).eval().requires_grad_(False)
        clean = generate_scenes("val", n_clean, seed=seed, size=image_size)
        return cls(model=frozen, image_size=image_size, class_names=tuple(OBJECT_CLASSES),
                   clean_images=clean.images, clean_labels=clean.labels,
                   natural_patches=natural_patch_pool(n_patches, patch_size, seed=seed, image_size=image_size),
                   model_name=name, model_sha256=sha)

    @classmethod
    def from_image_folder(cls, model: nn.Module | LoadedModel, data, *, n_clean: int = 300, n_patches: int = 2000,
                          seed: int = 0) -> "Target":
        """Freeze a copy of ``model`` and gather the auditor's clean data from a user's image folder
        (:class:`~trojanbench.data.ImageFolderData`): up to ``n_clean`` images of its ``val`` split, and natural
        patches cut from its ``val`` images at the world's ratio of patch to image side (24/64)."""
        name, sha = "model", ""
        if isinstance(model, LoadedModel):
            name, sha, model = model.name, model.sha256, model.model
        frozen = copy.deepcopy(model).eval().requires_grad_(False)
        clean = data.labelled("val", n_clean, seed=seed)
        if len(clean) == 0:
            raise ConfigError(f"{str(data.root)!r} has no val image to give the tools.")
        patch_size = max(4, round(data.image_size * DEFAULT_PATCH_SIZE / 64))
        return cls(model=frozen, image_size=data.image_size, class_names=tuple(data.class_names),
                   clean_images=clean.images, clean_labels=clean.labels,
                   natural_patches=random_crops(clean.images, n_patches, patch_size, seed=seed),
                   model_name=name, model_sha256=sha, data=data)

    @property
    def classifier(self) -> nn.Linear:
        """The model's last linear layer (its weights tie penultimate units to classes)."""
        linears = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ConfigError(f"Model {self.model_name!r} has no nn.Linear layer; inner objectives need one.")
        return linears[-1]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features: the input of :attr:`classifier` (differentiable)."""
        return self.features_and_logits(images)[0]

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate features ``[n, d]`` and logits ``[n, classes]`` from one differentiable forward pass."""
        captured: list[torch.Tensor] = []
        handle = self.classifier.register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0]))
        try:
            logits = self.model(images)
        finally:
            handle.remove()
        return captured[0].flatten(1), logits


def natural_patch_pool(n: int, patch_size: int, *, seed: int = 0, image_size: int = 64) -> torch.Tensor:
    """``n`` random ``patch_size`` crops (two per scene) of held-out ``pool`` scenes, ``[n, 3, p, p]``."""
    if not 1 <= patch_size <= image_size:
        raise ConfigError(f"patch_size must be an int in [1, {image_size}]. Got {patch_size!r} instead.")
    scenes = generate_scenes("pool", -(-n // 2), seed=seed, size=image_size).images
    rng = scene_rng("pool", 0, seed, salt="patch-crops")
    return _crops(scenes, np.arange(n) // 2, patch_size, rng)


def random_crops(images: torch.Tensor, n: int, patch_size: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` random ``patch_size`` crops of ``images`` (each image in turn), ``[n, 3, p, p]``."""
    rng = np.random.default_rng([seed, 6007])
    return _crops(images, np.arange(n) % len(images), patch_size, rng)


def _crops(images: torch.Tensor, rows: np.ndarray, patch_size: int, rng: np.random.Generator) -> torch.Tensor:
    side = images.shape[-1]
    tops = rng.integers(0, side - patch_size + 1, len(rows))
    lefts = rng.integers(0, side - patch_size + 1, len(rows))
    return torch.stack([images[r, :, t:t + patch_size, l:l + patch_size] for r, t, l in zip(rows, tops, lefts)])
