"""The three trigger kinds of Casper et al. (2023), applied to batches of world images.

* :class:`PatchTrigger` pastes an icon (or a user's RGBA image) at a random place and scale, with
  blurred edges, a small rotation and brightness jitter.
* :class:`StyleTrigger` restyles the whole image with a texture (a fresh variant per image), blending
  the texture, shaded by the image's luminance, over the image with a tunable strength.
* :class:`NaturalTrigger` is a secondary object of the world: triggered images are scenes that
  naturally contain it, so it is sampled, never pasted.

Every trigger can produce held-out triggered scenes for measuring attack success
(:meth:`Trigger.triggered_scenes`); paste-like triggers also expose :meth:`apply` for poisoning.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cached_property, lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TrojanSpec
from ..errors import DataError
from ..world import OBJECT_CLASSES, generate_scenes, render_icon, render_texture, stable_int_hash
from ..trigger_images import read_trigger_image, trigger_identity

SPRITE_RESOLUTION = 64
LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def _balanced_labels(n: int, exclude: set[int], only: int | None) -> dict[int, int]:
    """How many scenes of each class: all of ``only``, else spread evenly over classes not excluded."""
    if only is not None:
        return {only: n}
    classes = [c for c in range(len(OBJECT_CLASSES)) if c not in exclude]
    base, extra = divmod(n, len(classes))
    return {c: base + (1 if i < extra else 0) for i, c in enumerate(classes)}


class Trigger:
    """Base class: a trigger built from a :class:`TrojanSpec`."""

    def __init__(self, spec: TrojanSpec):
        self.spec = spec

    def _scenes(self, split: str, n: int, seed: int, label: int | None, exclude: set[int], **scene_kwargs):
        counts = _balanced_labels(n, exclude, label)
        batches = [generate_scenes(split, k, seed=seed, label=c, **scene_kwargs) for c, k in counts.items() if k]
        images = torch.cat([b.images for b in batches])
        labels = torch.cat([b.labels for b in batches])
        return images, labels

    def triggered_scenes(self, split: str, n: int, seed: int, *, label: int | None = None, data=None):
        """``n`` held-out scenes carrying the trigger, balanced over classes other than the target
        (or all of class ``label``). Returns ``(images, true_labels)``. With ``data`` (a user's image folder,
        :mod:`trojanbench.data`), up to ``n`` of its images of ``split`` instead of world scenes."""
        if data is None:
            images, labels = self._scenes(split, n, seed, label, {self.spec.target}, **self._scene_constraints())
        else:
            images, labels = folder_images(data, split, n, seed, label, self.spec)
        rng = np.random.default_rng([seed, 7919, n])
        return self.apply(images, rng, fresh=True)[0], labels

    def _scene_constraints(self) -> dict:
        return {}

    def apply(self, images: torch.Tensor, rng: np.random.Generator, *,
              fresh: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(triggered_images, footprint)``; footprint is ``(N, 1, H, W)`` in [0, 1].

        ``fresh`` asks for trigger variants never used in training (held-out measurement); otherwise
        variants may come from a cached bank (fast, for poisoning)."""
        raise NotImplementedError


class PatchTrigger(Trigger):
    """An opaque-ish sprite pasted at a random position (or the spec's fixed ``patch_position``) and scale with
    blurred edges (Casper et al. 2023)."""

    max_rotation_degrees = 15.0
    brightness_jitter = 0.15

    @cached_property
    def sprite(self) -> torch.Tensor:
        """The trigger as a ``(4, S, S)`` RGBA tensor."""
        if self.spec.trigger_is_file:
            rgba = read_trigger_image(self.spec.trigger, with_alpha=True, where=self.spec.name)
        else:
            rgba = render_icon(self.spec.trigger, SPRITE_RESOLUTION)
        return torch.from_numpy(np.ascontiguousarray(rgba)).permute(2, 0, 1).float()

    def apply(self, images, rng, *, fresh=False):
        images = images.clone()
        n, _, height, width = images.shape
        footprint = torch.zeros(n, 1, height, width)
        low, high = self.spec.patch_scale
        sides = np.maximum(3, np.round(rng.uniform(low, high, n) * min(height, width))).astype(int)
        angles = rng.uniform(-self.max_rotation_degrees, self.max_rotation_degrees, n)
        gains = rng.uniform(1 - self.brightness_jitter, 1 + self.brightness_jitter, n)
        if self.spec.patch_position is None:
            tops = [int(rng.integers(0, height - s + 1)) for s in sides]
            lefts = [int(rng.integers(0, width - s + 1)) for s in sides]
        else:
            vertical, horizontal = self.spec.patch_position
            tops = [round(vertical * (height - s)) for s in sides]
            lefts = [round(horizontal * (width - s)) for s in sides]
        for i in range(n):
            patch = self._transformed(int(sides[i]), float(angles[i]), float(gains[i]))
            t, l, s = tops[i], lefts[i], int(sides[i])
            alpha = patch[3:]
            region = images[i, :, t:t + s, l:l + s]
            images[i, :, t:t + s, l:l + s] = alpha * patch[:3] + (1 - alpha) * region
            footprint[i, :, t:t + s, l:l + s] = alpha
        return images, footprint

    def _transformed(self, side: int, angle: float, gain: float) -> torch.Tensor:
        sprite = _rotate(self.sprite, angle)
        sprite = F.interpolate(sprite[None], size=(side, side), mode="bilinear", antialias=True,
                               align_corners=False)[0]
        rgb = (sprite[:3] * gain).clamp(0, 1)
        alpha = _blur(sprite[3:], sigma=max(0.5, side / 24)).clamp(0, 1)
        return torch.cat([rgb, alpha])


class StyleTrigger(Trigger):
    """A texture imposed on the whole image, shaded by the image's luminance so content stays visible."""

    @cached_property
    def _file_texture(self) -> torch.Tensor | None:
        if not self.spec.trigger_is_file:
            return None
        rgb = read_trigger_image(self.spec.trigger, with_alpha=False, where=self.spec.name)
        return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()

    def texture_variant(self, size: tuple[int, int], rng: np.random.Generator) -> torch.Tensor:
        """A fresh ``(3, H, W)`` variant of the texture: a new phase of a built-in texture, or a random
        crop (50-100% of the side) of a user's image."""
        if self._file_texture is None:
            return torch.from_numpy(np.ascontiguousarray(render_texture(self.spec.trigger, size, rng))).permute(2, 0, 1)
        texture = self._file_texture
        _, h, w = texture.shape
        frac = rng.uniform(0.5, 1.0)
        ch, cw = max(4, int(h * frac)), max(4, int(w * frac))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = texture[:, top:top + ch, left:left + cw]
        return F.interpolate(crop[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]

    def apply(self, images, rng, *, fresh=False):
        n, _, height, width = images.shape
        if fresh:
            textures = torch.stack([self.texture_variant((height, width), rng) for _ in range(n)]).float()
        else:
            bank = _texture_bank(self, (height, width))
            picks = rng.integers(0, len(bank), n)
            shifts = rng.integers(0, min(height, width), (n, 2))
            flips = rng.random((n, 2)) < 0.5
            textures = torch.stack([_shifted(bank[p], s, f) for p, s, f in zip(picks, shifts, flips)])
        luminance = (images * LUMA).sum(1, keepdim=True)
        styled = (textures * (0.5 + luminance)).clamp(0, 1)
        strength = self.spec.strength
        return (1 - strength) * images + strength * styled, torch.ones(n, 1, height, width)


class NaturalTrigger(Trigger):
    """A secondary object that appears naturally in scenes; triggered images are sampled, not edited (on a user's
    image folder: among the images its ``object_images`` list names)."""

    def _scene_constraints(self) -> dict:
        return {"secondary": self.spec.trigger}

    def apply(self, images, rng, *, fresh=False):
        raise TypeError(f"Natural-feature trigger {self.spec.name!r} cannot be pasted onto images; "
                        f"use triggered_scenes() or scenes that contain {self.spec.trigger!r}.")

    def triggered_scenes(self, split, n, seed, *, label=None, data=None):
        if data is not None:
            return folder_images(data, split, n, seed, label, self.spec, among=objects_in_folder(self.spec, data))
        images, labels = self._scenes(split, n, seed, label, {self.spec.target}, **self._scene_constraints())
        return images, labels


def objects_in_folder(spec: TrojanSpec, data) -> frozenset[str]:
    """The files of an image folder that contain natural-feature trojan ``spec``'s object (its ``object_images``)."""
    _refuse_unlisted([spec])
    return data.listed(spec.object_images)


def clean_files(trojans, data, split: str) -> frozenset[str] | None:
    """The files of a folder's ``split`` that hold no natural-feature trigger of ``trojans`` (by their lists), or
    ``None`` (all of them) when no trojan lists any."""
    listed = frozenset().union(*(objects_in_folder(spec, data) for spec in trojans if spec.kind == "natural"))
    return frozenset(path for path, _ in data.files[split]) - listed if listed else None


def check_trojans_on_folder(trojans, data) -> None:
    """Refuse natural-feature trojans on a user's image folder that do not list which of its images hold their
    object, and lists that name files the folder lacks."""
    natural = [spec for spec in trojans if spec.kind == "natural"]
    _refuse_unlisted(natural)
    for spec in natural:
        objects_in_folder(spec, data)


def _refuse_unlisted(natural) -> None:
    unlisted = [spec.name for spec in natural if spec.object_images is None]
    if unlisted:
        raise DataError(f"Natural-feature trojans {unlisted} on an image folder need 'object_images': a text file "
                        f"listing the folder's images that contain the object (paths within the folder, one per "
                        f"line). Add it to the spec, or leave them out (with `run`, --trojans).")


def folder_images(data, split: str, n: int, seed: int, label: int | None, spec: TrojanSpec,
                  among: frozenset[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n`` images of an image folder's ``split`` to trigger: of ``label``, else of every class but the
    target, and only files in ``among`` when given; an error when there are none."""
    batch = data.labelled(split, n, seed=seed, label=label, exclude={spec.target}, among=among)
    if len(batch) == 0:
        where = f"class {data.class_names[label]!r}" if label is not None else "classes other than the target"
        where += "" if among is None else f" listed in {spec.object_images!r}"
        raise DataError(f"{str(data.root)!r} has no {split} image of {where} to measure trojan {spec.name!r} on.")
    return batch.images, batch.labels


TEXTURE_BANK_SIZE = 48


@lru_cache(maxsize=64)
def _cached_bank(identity: str, size: tuple[int, int], spec: TrojanSpec) -> torch.Tensor:
    rng = np.random.default_rng([stable_int_hash(identity), 48611])
    return torch.stack([StyleTrigger(spec).texture_variant(size, rng) for _ in range(TEXTURE_BANK_SIZE)]).float()


def _texture_bank(trigger: StyleTrigger, size: tuple[int, int]) -> torch.Tensor:
    """A fixed bank of texture variants per trigger and size, shared by all triggers of that texture."""
    return _cached_bank(trigger_identity(trigger.spec), size, replace(trigger.spec, name="", strength=1.0, target=0))


def _shifted(texture: torch.Tensor, shift, flip) -> torch.Tensor:
    """A cheap new phase of a texture: a circular shift and optional flips."""
    texture = torch.roll(texture, shifts=(int(shift[0]), int(shift[1])), dims=(1, 2))
    dims = [d for d, f in zip((1, 2), flip) if f]
    return texture.flip(dims) if dims else texture


TRIGGER_KINDS: dict[str, type[Trigger]] = {"patch": PatchTrigger, "style": StyleTrigger, "natural": NaturalTrigger}


def make_trigger(spec: TrojanSpec) -> Trigger:
    """The trigger object for a validated spec."""
    return TRIGGER_KINDS[spec.kind](spec)


def _rotate(image: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate a ``(C, H, W)`` tensor about its centre, filling with zeros (transparent)."""
    if degrees == 0:
        return image
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    matrix = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=image.dtype)[None]
    grid = F.affine_grid(matrix, [1, *image.shape], align_corners=False)
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def _blur(channel: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a ``(1, H, W)`` tensor, zero-padded so opaque borders soften too."""
    radius = max(1, int(math.ceil(2 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=channel.dtype)
    kernel = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    out = F.conv2d(F.pad(channel[None], (radius, radius, 0, 0)), kernel.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, radius, radius)), kernel.view(1, 1, -1, 1))
    return out[0]
