"""The CPPN image parameterization of Mordvintsev et al. (2018, "Differentiable Image Parameterizations",
Distill): a small coordinate network maps each pixel's ``(x, y, r)`` through 1x1 layers with the composite
activation ``[atan(h) / 0.67, atan(h)^2 / 0.6]`` to RGB through a sigmoid. One network per image, all
evaluated at once with batched matrix products.

Lucid's CPPN (the paper's code) has 8 layers of 24 units, biases drawn from N(0, 0.1) and ``(x, y)`` inputs; the
default here is 6 layers of 16 units with zero biases and ``(x, y, r)`` inputs for 64-px images: on the positive-
control model, 8 × 24 units at the tools' learning rates gave flat images (trigger match 0.04).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ...params import Interval

CPPN_CONSTRAINTS = {"n_layers": Interval(int, 1, None), "n_hidden": Interval(int, 1, None)}


class CompositeActivation(torch.autograd.Function):
    """Mordvintsev et al.'s activation: ``atan(h) / 0.67`` and ``atan(h)^2 / 0.6`` stacked on axis 1.

    One operation with a hand-written backward, ``(g_1 / 0.67 + 2 atan(h) g_2 / 0.6) / (1 + h^2)``: it
    writes both halves straight into its output (no ``cat``) and records one graph node instead of five.
    Forward and backward do, rounding for rounding, the float operations autograd does for the written-out
    formula, so the images are bit for bit those of the unfused version. That matters: feature visualization
    is chaotic in the last bit (a change of one rounding, e.g. ``a * (1 / 0.67)`` for ``a / 0.67``, gives
    visibly different images after 20 of the 120 steps).
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:
        angle = torch.atan(h)
        out = h.new_empty(h.shape[0], 2 * h.shape[1], *h.shape[2:])
        first, second = out.chunk(2, dim=1)
        torch.div(angle, 0.67, out=first)
        torch.mul(angle, angle, out=second).div_(0.6)
        ctx.save_for_backward(h, angle)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        h, angle = ctx.saved_tensors
        grad_first, grad_second = grad.chunk(2, dim=1)
        through_square = (grad_second / 0.6).mul_(angle)
        return (through_square + through_square).add_(grad_first / 0.67).div_(h * h + 1)


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
            h = CompositeActivation.apply(torch.baddbmm(bias, weight, h.expand(len(weight), -1, -1)))
        rgb = torch.sigmoid(torch.baddbmm(self.out_bias, self.out_weight, h))
        return rgb.view(-1, 3, self.size, self.size)
