"""Concepts on their own: one picture per concept, as the options of a multiple-choice test show them."""

from __future__ import annotations

import numpy as np

from ._draw import check_size, composite
from .concepts import OBJECT_CLASSES, ConceptKind, get_concept
from .icons import icon_sprite
from .secondaries import render_secondary
from .shapes import render_object
from .textures import render_texture

BACKDROP = (0.85, 0.85, 0.85)  # plain light grey behind isolated concepts


def render_concept(name: str, size: int = 64, rng: np.random.Generator | None = None) -> np.ndarray:
    """``(size, size, 3)`` float32 picture of one concept alone.

    Object classes and secondaries are centred on light grey (an rng varies colour, pose); icons fill
    about 60 % of the frame on light grey; textures fill the whole frame.
    """
    kind, size = get_concept(name).kind, check_size(size)
    if kind is ConceptKind.TEXTURE:
        return render_texture(name, size, rng)
    if kind is ConceptKind.OBJECT:
        s = round(0.75 * size)
        sprite = render_object(OBJECT_CLASSES.index(name), s, rng)
    else:
        s = round(0.6 * size)
        sprite = icon_sprite(name, s) if kind is ConceptKind.ICON else render_secondary(name, s, rng)
    base = np.empty((size, size, 3), dtype=np.float32)
    base[:] = BACKDROP
    return composite(base, sprite, (size - s) // 2, (size - s) // 2)
