"""Attribution baselines every attribution tool is reported beside: edges, a flat map and noise."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...registry import register_method
from .base import AttributionMethod

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


@register_method
class EdgeDetector(AttributionMethod):
    """Sobel gradient magnitude of each colour channel (replicate-padded), summed over channels.

    It ignores the model: a tool that localizes triggers no better than edges is not using the model
    (Casper et al. 2023 report the edge detector as the baseline for attribution).
    """

    name = "edge_detector"
    paper = "baseline (Sobel edge detector)"
    is_baseline = True

    def __init__(self):
        pass

    def _attribute(self, model, images, target_class, generator):
        channels = images.shape[1]
        kernels = torch.stack([_SOBEL_X, _SOBEL_X.T]).to(images.dtype)[:, None].repeat(channels, 1, 1, 1)
        padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
        gradients = F.conv2d(padded, kernels, groups=channels)  # [n, 2C, H, W]: (gx, gy) per channel
        return gradients.unflatten(1, (channels, 2)).pow(2).sum(2).sqrt().sum(1)


@register_method
class UniformMap(AttributionMethod):
    """The same value at every pixel: no localization at all (AUROC 0.5, correlation 0)."""

    name = "uniform_map"
    paper = "baseline (constant map)"
    is_baseline = True

    def __init__(self):
        pass

    def _attribute(self, model, images, target_class, generator):
        return torch.ones(images.shape[0], *images.shape[2:], dtype=images.dtype)


@register_method
class RandomMap(AttributionMethod):
    """Independent uniform noise per pixel, drawn from the seed: the chance floor."""

    name = "random_map"
    paper = "baseline (random map)"
    is_baseline = True

    def __init__(self):
        pass

    def _attribute(self, model, images, target_class, generator):
        return torch.rand(images.shape[0], *images.shape[2:], generator=generator, dtype=images.dtype)
