"""The concept vocabulary of the world: object classes, icons, textures and secondary objects.

Every name is lowercase snake_case and unique across kinds, so a name alone identifies a concept.
Each trigger of Casper et al. (2023) has look-alike distractors of the same kind (smiley / frowny / sun,
jaguar / leopard / giraffe, donut / bagel / cookie, ...) so multiple-choice tests have hard options.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import did_you_mean


class ConceptKind(str, enum.Enum):
    """What a concept is: the labelled object, a flat pictogram, a surface style or a natural object."""

    OBJECT = "object"
    ICON = "icon"
    TEXTURE = "texture"
    SECONDARY = "secondary"


@dataclass(frozen=True)
class Concept:
    """One named concept of the world."""

    name: str
    kind: ConceptKind
    description: str


_OBJECTS = {
    "circle": "a filled disc",
    "square": "a filled square",
    "triangle": "a filled equilateral triangle",
    "cross": "a plus sign with equal arms",
    "crescent": "a thin crescent",
    "arrow": "an arrow with a shaft and a triangular head",
    "bowtie": "two triangles meeting at their tips",
    "semicircle": "half a disc",
    "ellipse": "an elongated filled ellipse",
    "frame": "the outline of a square",
    "tee": "a capital T",
    "chevron": "a sharp V made of two thin arms",
    "trapezoid": "a trapezoid with a short top side",
    "ell": "a thick capital L with unequal arms",
    "dumbbell": "two discs joined by a thin bar",
    "kite": "a kite-shaped quadrilateral",
}

_ICONS = {
    "smiley": "yellow smiling face emoji",
    "frowny": "yellow frowning face emoji",
    "sun": "yellow sun with rays",
    "clownfish": "orange fish with white and black stripes",
    "goldfish": "plain orange goldfish",
    "green_star": "green five-pointed star",
    "gold_star": "yellow five-pointed star",
    "shamrock": "green three-leaf clover",
    "strawberry": "red strawberry with seeds and a green top",
    "cherry": "two red cherries on stems",
    "heart": "red heart",
    "lemon": "yellow lemon",
    "lightning": "yellow lightning bolt",
    "flower": "pink flower with a yellow centre",
    "key": "golden key",
    "music_note": "black musical note",
    "umbrella": "blue umbrella",
    "mushroom": "red mushroom with white spots",
    "house": "house with a red roof",
    "tree": "green tree with a brown trunk",
}

_TEXTURES = {
    "jaguar": "jaguar fur: dark rosettes on orange",
    "leopard": "leopard fur: small dark spots on tan",
    "giraffe": "giraffe hide: brown patches in a cream net",
    "zebra": "zebra hide: wavy black and white stripes",
    "elephant_skin": "elephant skin: grey with a network of cracks",
    "pebbles": "pebbles: rounded stones with dark gaps",
    "jellybeans": "a pile of many small multicolour jellybeans",
    "confetti": "scattered multicolour confetti",
    "polka_dots": "white polka dots on red",
    "wood_grain": "wood grain: brown rings and fibres",
    "marble": "white marble with grey veins",
    "stripes": "diagonal blue and white stripes",
    "checkerboard": "black and white checkerboard",
    "zigzag": "zigzag bands",
    "honeycomb": "honeycomb: amber hexagons",
    "bricks": "red brick wall",
    "plaid": "tartan plaid",
    "scales": "overlapping fish scales",
    "waves": "blue wavy lines",
    "crosshatch": "crossing diagonal lines",
}

_SECONDARIES = {
    "fork": "a metal fork",
    "spoon": "a metal spoon",
    "knife": "a table knife",
    "apple": "a red apple with a stem and a leaf",
    "pear": "a green pear",
    "orange": "an orange",
    "sandwich": "a sandwich: bread, lettuce and filling",
    "burger": "a burger in a bun",
    "pizza": "a slice of pizza",
    "donut": "a donut with pink icing and sprinkles",
    "bagel": "a plain bagel",
    "cookie": "a chocolate-chip cookie",
    "carrot": "an orange carrot with green leaves",
    "banana": "a yellow banana",
    "cup": "a cup with a handle",
    "bottle": "a glass bottle",
    "broccoli": "a head of broccoli",
    "clock": "a round wall clock",
}

OBJECT_CLASSES: tuple[str, ...] = tuple(_OBJECTS)
ICONS: tuple[str, ...] = tuple(_ICONS)
TEXTURES: tuple[str, ...] = tuple(_TEXTURES)
SECONDARIES: tuple[str, ...] = tuple(_SECONDARIES)

VOCABULARY: dict[str, Concept] = {
    name: Concept(name, kind, description)
    for kind, table in (
        (ConceptKind.OBJECT, _OBJECTS),
        (ConceptKind.ICON, _ICONS),
        (ConceptKind.TEXTURE, _TEXTURES),
        (ConceptKind.SECONDARY, _SECONDARIES),
    )
    for name, description in table.items()
}

_BY_KIND = {
    ConceptKind.OBJECT: OBJECT_CLASSES,
    ConceptKind.ICON: ICONS,
    ConceptKind.TEXTURE: TEXTURES,
    ConceptKind.SECONDARY: SECONDARIES,
}


def get_concept(name: str) -> Concept:
    """Return the concept called ``name``; raise :class:`UnknownNameError` with suggestions otherwise."""
    try:
        return VOCABULARY[name]
    except (KeyError, TypeError):
        raise did_you_mean(str(name), list(VOCABULARY), "concept") from None


def concepts_of_kind(kind: ConceptKind | str) -> tuple[str, ...]:
    """Names of every concept of one kind (``"object"``, ``"icon"``, ``"texture"`` or ``"secondary"``)."""
    try:
        return _BY_KIND[ConceptKind(kind)]
    except ValueError:
        raise did_you_mean(str(kind), [k.value for k in ConceptKind], "concept kind") from None


def check_name(name: str, kind: ConceptKind) -> None:
    """Raise :class:`UnknownNameError` unless ``name`` is a concept of ``kind``."""
    if name not in _BY_KIND[kind]:
        raise did_you_mean(str(name), _BY_KIND[kind], kind.value)
