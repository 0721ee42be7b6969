"""Comparing checkpoints built twice from the same seed.

CPU kernels may sum in an order that depends on threads and memory alignment, so two builds from one
seed agree to float32 rounding, not always bit for bit: weights are compared with a tolerance.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_file(str(a)), load_file(str(b))
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(second[key], first[key], rtol=1e-3, atol=1e-4, msg=lambda m: f"{key}: {m}")
