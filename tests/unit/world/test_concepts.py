import re

import pytest

from trojanbench.errors import UnknownNameError
from trojanbench.world import (
    ICONS, OBJECT_CLASSES, SECONDARIES, TEXTURES, VOCABULARY, ConceptKind, concepts_of_kind, get_concept,
)


def test_counts_and_required_names():
    assert len(OBJECT_CLASSES) == 16
    for names in (ICONS, TEXTURES, SECONDARIES):
        assert len(names) >= 16
    assert {"smiley", "clownfish", "green_star", "strawberry"} <= set(ICONS)
    assert {"jaguar", "elephant_skin", "jellybeans", "wood_grain"} <= set(TEXTURES)
    assert {"fork", "apple", "sandwich", "donut"} <= set(SECONDARIES)


def test_names_unique_snake_case_and_in_vocabulary():
    everything = OBJECT_CLASSES + ICONS + TEXTURES + SECONDARIES
    assert len(set(everything)) == len(everything) == len(VOCABULARY)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in everything)


@pytest.mark.parametrize("kind", list(ConceptKind))
def test_concepts_of_kind_matches_vocabulary(kind):
    names = concepts_of_kind(kind)
    assert names == concepts_of_kind(kind.value)
    assert all(get_concept(n).kind is kind for n in names)


def test_unknown_names_suggest_close_matches():
    with pytest.raises(UnknownNameError, match="Did you mean: smiley"):
        get_concept("smilie")
    with pytest.raises(UnknownNameError, match="Did you mean: icon"):
        concepts_of_kind("icons")
