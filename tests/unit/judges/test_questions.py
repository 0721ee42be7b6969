"""Multiple-choice questions: eight options of the trigger's kind, the truth among them, fixed per seed."""

from __future__ import annotations

import pytest
import torch

from trojanbench.config import TrojanSpec, default_trojan_suite
from trojanbench.errors import ConfigError
from trojanbench.judges import N_OPTIONS, build_question, option_picture
from trojanbench.judges.base import option_views
from trojanbench.judges.questions import CONCEPT_KIND_OF
from trojanbench.world import concepts_of_kind


@pytest.mark.parametrize("spec", default_trojan_suite().trojans, ids=lambda s: s.name)
def test_question_has_eight_distinct_options_of_the_trigger_kind(spec):
    question = build_question(spec, seed=0)
    assert len(question.options) == N_OPTIONS == len(set(question.options))
    assert question.truth == spec.trigger
    assert set(question.options) <= set(concepts_of_kind(CONCEPT_KIND_OF[spec.kind]))
    assert question.to_dict()["options"][question.truth_index] == spec.trigger


def test_questions_are_fixed_per_seed_and_vary_across_seeds():
    spec = default_trojan_suite().get("smiley")
    assert build_question(spec, 1) == build_question(spec, 1)
    questions = {build_question(spec, s).options for s in range(6)}
    assert len(questions) > 1
    positions = {build_question(spec, s).truth_index for s in range(12)}
    assert len(positions) > 2, "the truth must not sit at a fixed position"


def test_distractors_are_plausible_look_alikes():
    """The closest look-alikes by colour are always offered (frowny beside smiley, bagel beside donut)."""
    suite = default_trojan_suite()
    for seed in range(3):
        assert "frowny" in build_question(suite.get("smiley"), seed).options
        assert "bagel" in build_question(suite.get("donut"), seed).options


def test_a_users_trigger_image_is_an_option(logo_png):
    spec = TrojanSpec(name="logo", kind="patch", trigger=str(logo_png), target=0)
    question = build_question(spec, 0)
    assert question.truth == str(logo_png)
    picture = option_picture(question.truth, "patch", 32)
    assert picture.shape == (32, 32, 3) and picture.max() <= 1.0
    assert picture[16, 16, 1] < 0.1 and picture[16, 16, 0] > 0.9, "the magenta logo sits in the middle"


def test_a_users_trigger_gets_the_same_question_wherever_its_file_lives(logo_png, tmp_path):
    """The draw follows the image's content: a run in another folder asks the same question."""
    moved = tmp_path / "elsewhere" / "renamed.png"
    moved.parent.mkdir()
    moved.write_bytes(logo_png.read_bytes())
    here, there = (build_question(TrojanSpec(name="logo", kind="patch", trigger=str(path), target=0), seed)
                   for path, seed in ((logo_png, 3), (moved, 3)))
    assert there.truth_index == here.truth_index
    assert [o for o in there.options if o != str(moved)] == [o for o in here.options if o != str(logo_png)]
    views_here, views_there = option_views("patch", str(logo_png), 4), option_views("patch", str(moved), 4)
    assert torch.equal(views_here, views_there)


def test_unknown_kind_is_refused():
    spec = TrojanSpec(name="x", kind="sound", trigger="smiley", target=0)
    with pytest.raises(ConfigError, match="kind 'sound'"):
        build_question(spec, 0)
