"""Shared by the cost benchmarks: forward FLOPs of a model, the matmul rate of this machine, a timer."""

from __future__ import annotations

import time

import torch
import torch.nn as nn


def forward_flops(model: nn.Module, size: int = 64) -> float:
    """Multiply-adds x 2 of one forward pass of one image, over its convolutions and linear layers."""
    total = 0.0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1]
            total += 2 * output.numel() * module.in_channels // module.groups * kernel
        elif isinstance(module, nn.Linear):
            total += 2 * output.numel() * module.in_features

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.rand(1, 3, size, size))
    for handle in handles:
        handle.remove()
    return total


def matmul_rate(n: int = 512, repeats: int = 20) -> float:
    """FLOP/s of an n x n float32 matrix product here (the best a dense kernel can do)."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - start)


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result
