"""Labelled scenes: one dominant object on a background, sometimes with a secondary object or an icon."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import ConfigError
from ._draw import alpha_at, check_size, composite
from .concepts import ICONS, OBJECT_CLASSES, SECONDARIES, TEXTURES, ConceptKind, check_name
from .icons import icon_sprite
from .secondaries import render_secondary
from .shapes import check_label, random_colour, render_object
from .textures import render_texture

SECONDARY_RATE = 0.3  # how often a scene naturally holds a secondary object
ICON_RATE = 0.05  # how often a scene naturally holds a small icon
BACKGROUNDS = ("solid", "gradient", "noise", "texture")
BACKGROUND_RATES = (0.3, 0.3, 0.25, 0.15)
MIN_SIZE = 32
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class SceneInfo:
    """What a scene holds: the class label and the incidental concepts drawn in it."""

    label: int
    secondary: str | None
    icon: str | None
    background: str  # "solid" | "gradient" | "noise" | "texture:<name>"


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    grey = rng.uniform(0.12, 0.95)
    return np.clip(grey + rng.normal(0, 0.12, 3), 0, 1).astype(np.float32)


@lru_cache(maxsize=16)
def _upsampler(size: int, knots: int = 5) -> np.ndarray:
    """``(size, knots)`` matrix of bilinear weights that stretches ``knots`` samples over ``size`` pixels."""
    pos = (np.arange(size) + 0.5) / size * (knots - 1)
    return np.clip(1 - np.abs(pos[:, None] - np.arange(knots)[None, :]), 0, 1).astype(np.float32)


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    kind = BACKGROUNDS[rng.choice(len(BACKGROUNDS), p=BACKGROUND_RATES)]
    if kind == "solid":
        return np.broadcast_to(_muted_colour(rng), (size, size, 3)).copy(), kind
    if kind == "gradient":
        a, b, angle = _muted_colour(rng), _muted_colour(rng), rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * np.arange(size)[None, :] + np.sin(angle) * np.arange(size)[:, None]
        t = ((ramp - ramp.min()) / (ramp.max() - ramp.min()))[..., None].astype(np.float32)
        return a + (b - a) * t, kind
    if kind == "noise":
        knots = _muted_colour(rng) + rng.normal(0, 0.07, (5, 5, 3)).astype(np.float32)
        m = _upsampler(size)
        return np.clip((m @ knots.transpose(2, 0, 1) @ m.T).transpose(1, 2, 0), 0, 1), kind
    name = TEXTURES[rng.integers(len(TEXTURES))]
    texture = render_texture(name, size, rng)
    flat = texture.mean(axis=(0, 1))
    return flat + rng.uniform(0.25, 0.45) * (texture - flat), f"texture:{name}"


def _contrasting_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """The best-contrasting (in luminance) of a few random saturated colours."""
    target = float(background[::4, ::4].mean(axis=(0, 1)) @ _LUMA)
    colours = [random_colour(rng) for _ in range(4)]
    return max(colours, key=lambda c: abs(float(c @ _LUMA) - target))


def _place(rng: np.random.Generator, sprite: np.ndarray, obstacle: np.ndarray, tries: int = 8) -> tuple[int, int]:
    """A spot inside the frame where ``sprite`` covers as little of ``obstacle`` (a mask) as possible."""
    size, s = obstacle.shape[0], sprite.shape[0]
    best, best_cover = (0, 0), np.inf
    for _ in range(tries):
        top, left = rng.integers(0, size - s + 1, 2)
        cover = float((obstacle[top:top + s, left:left + s] * sprite[..., 3]).sum())
        if cover < best_cover:
            best, best_cover = (int(top), int(left)), cover
        if cover <= 0.1 * s * s:
            break
    return best


def _pick(rng: np.random.Generator, choice: str | None, names: tuple[str, ...], rate: float) -> str | None:
    if choice == "auto":
        return names[rng.integers(len(names))] if rng.random() < rate else None
    return choice


def check_scene_args(size: int, label: int | None, secondary: str | None, icon: str | None) -> None:
    """Raise a clear error for an invalid size, label or concept name."""
    check_size(size, MIN_SIZE)
    if label is not None:
        check_label(label)
    if secondary not in (None, "auto"):
        check_name(secondary, ConceptKind.SECONDARY)
    if icon not in (None, "auto"):
        check_name(icon, ConceptKind.ICON)


def render_scene(rng: np.random.Generator, size: int = 64, *, label: int | None = None,
                 secondary: str | None = "auto", icon: str | None = "auto",
                 backdrop: np.ndarray | None = None) -> tuple[np.ndarray, SceneInfo]:
    """Draw one ``(size, size, 3)`` float32 scene and describe it.

    ``label=None`` draws a uniform random class. ``secondary`` and ``icon``: ``"auto"`` adds one at
    its natural rate (:data:`SECONDARY_RATE`, :data:`ICON_RATE`), a name forces it, ``None`` forbids it.
    ``backdrop``: a ``(size, size, 3)`` picture to draw on instead of one of :data:`BACKGROUNDS` (its
    background is then ``"backdrop"``), for out-of-distribution scenes.
    """
    check_scene_args(size, label, secondary, icon)
    label = int(rng.integers(len(OBJECT_CLASSES))) if label is None else int(label)
    if backdrop is None:
        image, background = _background(rng, size)
    else:
        if backdrop.shape != (size, size, 3):
            raise ConfigError(f"backdrop must have shape {(size, size, 3)}. Got {backdrop.shape}.")
        image, background = np.asarray(backdrop, dtype=np.float32).copy(), "backdrop"

    s = int(rng.integers(round(size * 20 / 64), round(size * 40 / 64) + 1))
    sprite = render_object(label, s, rng, _contrasting_colour(rng, image))
    top, left = rng.integers(-s // 10, size - s + s // 10 + 1, 2)
    image = composite(image, sprite, int(top), int(left))
    obstacle = alpha_at((size, size), sprite, int(top), int(left))

    secondary = _pick(rng, secondary, SECONDARIES, SECONDARY_RATE)
    if secondary is not None:
        s2 = int(rng.integers(round(size * 10 / 64), round(size * 18 / 64) + 1))
        sprite2 = render_secondary(secondary, s2, rng)
        image = composite(image, sprite2, *_place(rng, sprite2, obstacle))
    icon = _pick(rng, icon, ICONS, ICON_RATE)
    if icon is not None:
        sprite3 = icon_sprite(icon, int(rng.integers(round(size * 8 / 64), round(size * 12 / 64) + 1)))
        image = composite(image, sprite3, *_place(rng, sprite3, obstacle))
    return image, SceneInfo(label, secondary, icon, background)
