"""Reading users' trigger images (PNG with alpha for patches, any image for style textures)."""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import SpecError

if TYPE_CHECKING:  # annotations only: the trojan spec reads trigger images through this module
    from .config import TrojanSpec

MAX_TRIGGER_SIDE = 256
MAX_TRIGGER_PIXELS = 4096 * 4096
"""Larger trigger images are refused before their pixels are decoded (a small file can hold a "decompression bomb"
of billions of pixels); they would be downscaled to ``MAX_TRIGGER_SIDE`` anyway."""


def read_trigger_image(path: str | Path, *, with_alpha: bool, where: str = "trigger") -> np.ndarray:
    """Load an image file as float32 ``(H, W, 4)`` RGBA (``with_alpha``) or ``(H, W, 3)`` RGB in [0, 1].

    Images of more than ``MAX_TRIGGER_PIXELS`` are refused from their header, before decoding; images larger
    than ``MAX_TRIGGER_SIDE`` are downscaled (keeping the aspect ratio). An image without an alpha channel used
    as a patch is taken as fully opaque.
    """
    from PIL import Image, UnidentifiedImageError

    path = _existing_file(path, where)
    try:
        with warnings.catch_warnings():  # Pillow warns of large images; those are refused below, with the reason
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)  # reads the header only
    except Image.DecompressionBombError as exc:  # over Pillow's own, larger limit, checked as it opens the file
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_large(path, where, f"{int(found.group(1)):,} pixels" if found else "too large to open") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise _unreadable(path, where, exc) from exc
    with opened:
        if opened.width * opened.height > MAX_TRIGGER_PIXELS:
            raise _too_large(path, where, f"{opened.width}x{opened.height} pixels")
        try:
            img = opened.convert("RGBA" if with_alpha else "RGB")  # decodes the pixels
        except (OSError, ValueError) as exc:
            raise _unreadable(path, where, exc) from exc
    if min(img.size) < 4:
        raise SpecError(f"{where}: trigger image {str(path)!r} is {img.size[0]}x{img.size[1]} pixels; "
                        f"it must be at least 4x4.")
    if max(img.size) > MAX_TRIGGER_SIDE:
        img.thumbnail((MAX_TRIGGER_SIDE, MAX_TRIGGER_SIDE), Image.Resampling.LANCZOS)
    array = np.asarray(img, dtype=np.float32) / 255.0
    if with_alpha and float(array[..., 3].max()) <= 0.0:
        raise SpecError(f"{where}: trigger image {str(path)!r} is fully transparent; a patch needs visible pixels.")
    return array


def trigger_identity(spec: TrojanSpec) -> str:
    """What a trojan's trigger is, wherever its file lives: a concept's name, or ``sha256:`` and the
    digest of a trigger image's bytes; a natural object listed in a user's images (``object_images``) adds the
    list's digest. Seeds use it, so a question does not depend on where the file lives; result keys use it, so
    editing the image (or the list) invalidates what was computed from it."""
    if spec.object_images is not None:
        path = Path(spec.object_images)
        if not path.is_file():
            raise SpecError(f"{spec.name}: its list of images with the object, {str(path)!r}, does not exist.")
        listed = hashlib.sha256(path.read_bytes()).hexdigest()
        return f"{spec.trigger}|objects:sha256:{listed}"
    if not spec.trigger_is_file:
        return spec.trigger
    return "sha256:" + hashlib.sha256(_existing_file(spec.trigger, spec.name).read_bytes()).hexdigest()


def _too_large(path: Path, where: str, size: str) -> SpecError:
    return SpecError(f"{where}: trigger image {str(path)!r} is {size} ({path.stat().st_size:,} bytes on disk), over "
                     f"the limit of {MAX_TRIGGER_PIXELS:,} pixels (4096x4096) for a trigger image. Downscale it: it "
                     f"is used at most {MAX_TRIGGER_SIDE} pixels a side.")


def _unreadable(path: Path, where: str, exc: Exception) -> SpecError:
    return SpecError(f"{where}: trigger image {str(path)!r} cannot be read as an image ({exc}).")


def _existing_file(path: str | Path, where: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{where}: trigger image {str(path)!r} does not exist. Give a path to a PNG/JPEG file "
                        f"(relative paths are resolved next to the spec file).")
    return path
