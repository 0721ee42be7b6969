"""The built-in procedural image world: concept vocabulary, renderers, scenes and dataset splits.

A laptop-scale stand-in for ImageNet in which trojan triggers (icons, textures, secondary objects)
are concepts that can be drawn, named and recognised. Everything is deterministic numpy rendering.
"""

from ._draw import composite
from .concepts import (
    ICONS,
    OBJECT_CLASSES,
    SECONDARIES,
    TEXTURES,
    VOCABULARY,
    Concept,
    ConceptKind,
    concepts_of_kind,
    get_concept,
)
from .datasets import SPLITS, SceneBatch, generate_scenes, scene_rng, stable_int_hash
from .icons import render_icon
from .render import render_concept
from .scenes import ICON_RATE, SECONDARY_RATE, SceneInfo, render_scene
from .secondaries import render_secondary
from .shapes import render_object
from .textures import render_texture

__all__ = [
    "ConceptKind", "Concept", "OBJECT_CLASSES", "ICONS", "TEXTURES", "SECONDARIES", "VOCABULARY",
    "get_concept", "concepts_of_kind",
    "render_icon", "render_texture", "render_secondary", "render_object", "render_concept", "composite",
    "SceneInfo", "SECONDARY_RATE", "ICON_RATE", "render_scene",
    "SPLITS", "SceneBatch", "generate_scenes", "scene_rng", "stable_int_hash",
]
