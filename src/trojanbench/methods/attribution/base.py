"""The attribution family: from the model and an input, a map of how much each pixel drove a class.

An :class:`AttributionMethod` has an inert constructor and declared hyperparameters like every
:class:`~trojanbench.methods.base.Method`, and one entry point, :meth:`AttributionMethod.attribute`,
which validates its arguments, runs :meth:`AttributionMethod._attribute` with all randomness seeded
(torch's and numpy's global generators are seeded for the call and restored afterwards, since Captum
draws from them), and checks the result: a finite float map ``[n, H, W]``, one value per pixel.
The localization task (:mod:`trojanbench.tasks.localization`) scores those maps against planted
patch triggers.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ...errors import ConfigError, MethodError
from ...models import LoadedModel
from ...params import Interval, require
from ..base import Method


class AttributionMethod(Method):
    """Attribution: explain the model's ``target_class`` logit on given images, one value per pixel.

    Subclasses implement :meth:`_attribute`, which gets the model in eval mode, a detached copy of the
    images, the target class and a seeded :class:`torch.Generator`, and returns ``[n, H, W]`` (or
    ``[n, C, H, W]``, which is summed over channels as absolute values).
    """

    family = "attribution"

    def attribute(self, model: nn.Module, images: torch.Tensor, target_class: int, seed: int = 0) -> torch.Tensor:
        """A float map ``[n, H, W]`` of how much each pixel of ``images`` drove ``target_class``.

        ``model`` takes float images ``[n, C, H, W]`` in ``[0, 1]`` (a
        :class:`~trojanbench.models.LoadedModel` is unwrapped); ``seed`` seeds any randomness, so the
        same seed gives the same map. The model is run in eval mode and left as it was.
        """
        self.validate()
        model = model.model if isinstance(model, LoadedModel) else model
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model must be a torch.nn.Module (or a LoadedModel). "
                              f"Got {type(model).__name__} instead.")
        _check_input_images(images)
        seed = require("seed", seed, Interval(int, 0, None))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                n_classes = int(model(images[:1]).shape[-1])
            target_class = require("target_class", target_class, Interval(int, 0, n_classes - 1))
            numpy_state = np.random.get_state()
            try:
                with torch.random.fork_rng(devices=[]), torch.enable_grad():
                    torch.manual_seed(seed)
                    np.random.seed(seed)
                    generator = torch.Generator().manual_seed(seed)
                    maps = self._attribute(model, images.detach().clone(), target_class, generator)
            finally:
                np.random.set_state(numpy_state)
        finally:
            model.train(was_training)
        n, _, height, width = images.shape
        if isinstance(maps, torch.Tensor) and maps.dim() == 4 and maps.shape[0] == n:
            maps = maps.detach().abs().sum(1)
        check_maps(maps, n, height, width, owner=type(self).__name__)
        return maps.detach().float()

    def _attribute(self, model: nn.Module, images: torch.Tensor, target_class: int,
                   generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


def _check_input_images(images: object) -> None:
    if not isinstance(images, torch.Tensor):
        raise ConfigError(f"images must be a torch.Tensor [n, C, H, W]. Got {type(images).__name__} instead.")
    if images.dim() != 4 or images.shape[0] < 1:
        raise ConfigError(f"images must be a tensor of shape [n, C, H, W] with n >= 1. "
                          f"Got shape {tuple(images.shape)} instead.")
    if not images.is_floating_point():
        raise ConfigError(f"images must be a float tensor in [0, 1]. Got dtype {images.dtype} instead.")
    if not torch.isfinite(images).all():
        raise ConfigError("images must be finite. Got NaN or infinite values.")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        raise ConfigError(f"images must have pixel values in [0, 1]. Got values in [{low:.3g}, {high:.3g}] instead.")


def check_maps(maps: object, n: int, height: int, width: int, *, owner: str) -> None:
    """Raise :class:`MethodError` unless ``maps`` is a finite float ``[n, H, W]`` tensor."""
    expected = (n, height, width)
    if not isinstance(maps, torch.Tensor):
        raise MethodError(f"{owner} returned {type(maps).__name__}, not a torch.Tensor.")
    if tuple(maps.shape) != expected:
        raise MethodError(f"{owner} returned a map of shape {tuple(maps.shape)}; expected {expected}.")
    if not maps.is_floating_point():
        raise MethodError(f"{owner} returned a {maps.dtype} map; expected a float tensor.")
    if not torch.isfinite(maps).all():
        raise MethodError(f"{owner} returned a map with NaN or infinite values.")
