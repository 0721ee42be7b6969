"""Reproducible, randomly accessible scene datasets, one independent stream per split.

Scene ``i`` of a split is drawn from its own generator, seeded by ``(seed, split, i, constraints)``,
so it never depends on how many scenes are asked for or on which other scenes were drawn.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import did_you_mean
from ..params import Interval, require
from .scenes import SceneInfo, check_scene_args, render_scene

SPLITS = ("train", "val", "test", "defense", "pool", "observer")


@dataclass
class SceneBatch:
    """Scenes as tensors, with what each one holds."""

    images: torch.Tensor  # (N, 3, H, W) float32 in [0, 1]
    labels: torch.Tensor  # (N,) int64
    infos: list[SceneInfo]

    def __len__(self) -> int:
        return len(self.infos)


def stable_int_hash(text: str) -> int:
    """A hash of ``text`` that is the same in every process (unlike Python's ``hash``)."""
    return zlib.crc32(text.encode("utf-8"))


def _check_int(value, name: str, minimum: int = 0) -> int:
    return require(name, value, Interval(int, minimum, None))


def scene_rng(split: str, index: int, seed: int, salt: str = "") -> np.random.Generator:
    """The generator of scene ``index`` of ``split``; ``salt`` separates constrained streams."""
    if split not in SPLITS:
        raise did_you_mean(str(split), SPLITS, "split")
    entropy = [_check_int(seed, "seed"), SPLITS.index(split), _check_int(index, "index"), stable_int_hash(salt)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _salt(label: int | None, secondary: str | None, icon: str | None) -> str:
    if label is None and secondary == "auto" and icon == "auto":
        return ""
    return f"label={label}|secondary={secondary}|icon={icon}"


def generate_scenes(split: str, n: int, *, seed: int = 0, size: int = 64, start: int = 0,
                    label: int | None = None, secondary: str | None = "auto", icon: str | None = "auto") -> SceneBatch:
    """Scenes ``start .. start + n - 1`` of ``split`` (see :func:`render_scene` for the constraints)."""
    if split not in SPLITS:
        raise did_you_mean(str(split), SPLITS, "split")
    n, start = _check_int(n, "n"), _check_int(start, "start")
    check_scene_args(size, label, secondary, icon)
    salt = _salt(label, secondary, icon)
    images = np.empty((n, size, size, 3), dtype=np.float32)
    infos = []
    for i in range(n):
        images[i], info = render_scene(scene_rng(split, start + i, seed, salt), size,
                                       label=label, secondary=secondary, icon=icon)
        infos.append(info)
    return SceneBatch(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        labels=torch.tensor([info.label for info in infos], dtype=torch.int64),
        infos=infos,
    )
