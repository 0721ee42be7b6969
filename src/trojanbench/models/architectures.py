"""Model architectures and their registry.

Every architecture takes float images ``(N, 3, H, W)`` in ``[0, 1]`` and normalises internally, so
interpretability methods can optimise directly in pixel space.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from trojanbench.errors import ConfigError, did_you_mean
from trojanbench.params import Interval, require

__all__ = ["ARCHITECTURES", "BasicBlock", "CompactResNet", "build_model"]


def _check_int(owner: str, name: str, value: object, low: int) -> int:
    """``value`` as an int, or a ConfigError unless it is an int >= ``low`` (bools refused)."""
    return require(name, value, Interval(int, low, None), owner=owner)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut (1x1 conv-BN when the shape changes), ReLU after the sum."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CompactResNet(nn.Module):
    """A CPU-sized residual CNN: stem, three BasicBlock stages (w, 2w, 4w), global pool, linear head.

    Parameters
    ----------
    num_classes : number of output logits.
    width : channels of the first stage (``w``); about 311k parameters at 32.
    image_size : expected input side in pixels (recorded for callers; the global pool accepts any
        size of at least 16).
    """

    def __init__(self, num_classes: int, width: int = 32, image_size: int = 64) -> None:
        super().__init__()
        num_classes = _check_int("CompactResNet", "num_classes", num_classes, 1)
        width = _check_int("CompactResNet", "width", width, 1)
        image_size = _check_int("CompactResNet", "image_size", image_size, 16)
        self.num_classes, self.width, self.image_size = num_classes, width, image_size
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, 3, 1, 1), 0.25))
        w = width
        self.stem = nn.Sequential(
            nn.Conv2d(3, w, 5, stride=2, padding=2, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.stage1 = BasicBlock(w, w, 1)
        self.stage2 = BasicBlock(w, 2 * w, 2)
        self.stage3 = BasicBlock(2 * w, 4 * w, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(N, 4 * width)`` of pixel images ``x`` in ``[0, 1]``."""
        x = (x - self.mean) / self.std
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    def named_layers(self) -> dict[str, nn.Module]:
        """Hookable layers in forward order: stem, stage1, stage2, stage3, fc."""
        return {name: getattr(self, name) for name in ("stem", "stage1", "stage2", "stage3", "fc")}


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"compact_resnet": CompactResNet}


def build_model(architecture: str, **kwargs: object) -> nn.Module:
    """Build a registered architecture by name; unknown names and keyword arguments raise clearly."""
    if architecture not in ARCHITECTURES:
        raise did_you_mean(architecture, list(ARCHITECTURES), "architecture")
    factory = ARCHITECTURES[architecture]
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        raise ConfigError(
            f"Invalid arguments {sorted(kwargs)} for architecture {architecture!r}: {exc}. "
            f"Its signature is {architecture}{inspect.signature(factory)}."
        ) from None
    return factory(**kwargs)
