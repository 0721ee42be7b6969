"""The CPPN image parameterization of Mordvintsev et al. (2018, "Differentiable Image Parameterizations",
Distill): a small coordinate network maps each pixel's ``(x, y, r)`` through 1x1 layers with the composite
activation ``[atan(h) / 0.67, atan(h)^2 / 0.6]`` to RGB through a sigmoid. One network per image, all
evaluated at once with batched matrix products.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ...params import Interval

CPPN_CONSTRAINTS = {"n_layers": Interval(int, 1, None), "n_hidden": Interval(int, 1, None)}


def composite_activation(h: torch.Tensor) -> torch.Tensor:
    """Mordvintsev et al.'s activation: ``atan`` and its square, normalized, stacked on the channel axis."""
    a = torch.atan(h)
    return torch.cat([a / 0.67, a * a / 0.6], dim=1)


class CPPNImages(nn.Module):
    """``n`` independently initialized CPPNs; ``forward()`` renders ``[n, 3, size, size]`` in ``[0, 1]``.

    Hidden weights are drawn from N(0, 1/fan_in) and the output layer starts at zero (a grey image),
    as in the paper's implementation.
    """

    def __init__(self, n: int, size: int, generator: torch.Generator, n_layers: int = 6,
                 n_hidden: int = 16) -> None:
        super().__init__()
        self.size = size
        span = torch.linspace(-math.sqrt(3), math.sqrt(3), size)  # unit standard deviation
        y, x = torch.meshgrid(span, span, indexing="ij")
        self.register_buffer("coords", torch.stack([x, y, (x ** 2 + y ** 2).sqrt()]).reshape(3, -1))
        fan_ins = [3] + [2 * n_hidden] * (n_layers - 1)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(n, n_hidden, fan_in, generator=generator) / math.sqrt(fan_in))
            for fan_in in fan_ins)
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(n, n_hidden, 1)) for _ in fan_ins)
        self.out_weight = nn.Parameter(torch.zeros(n, 3, 2 * n_hidden))
        self.out_bias = nn.Parameter(torch.zeros(n, 3, 1))

    def forward(self) -> torch.Tensor:
        h = self.coords
        for weight, bias in zip(self.weights, self.biases):
            h = composite_activation(torch.baddbmm(bias, weight, h.expand(len(weight), -1, -1)))
        rgb = torch.sigmoid(torch.baddbmm(self.out_bias, self.out_weight, h))
        return rgb.view(-1, 3, self.size, self.size)
