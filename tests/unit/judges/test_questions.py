"""Multiple-choice questions: eight options of the trigger's kind, the truth among them, fixed per seed."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from trojanbench.config import TrojanSpec, default_trojan_suite
from trojanbench.errors import ConfigError
from trojanbench.judges import N_OPTIONS, build_question, option_picture
from trojanbench.judges.base import option_views
from trojanbench.judges.battery import distinct_options
from trojanbench.judges.lookalikes import NEAR_DUPLICATE
from trojanbench.judges.questions import CONCEPT_KIND_OF, Question, near_duplicates, option_distance
from trojanbench.world import concepts_of_kind
from trojanbench.world.icons import icon_sprite


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


def _copy_of_icon(name, path, side=80, margin=12, tint=0.1):
    """A built-in icon saved as a user would save it: another size, a transparent margin, a slight tint."""
    sprite = np.asarray(icon_sprite(name, side), dtype=np.float32)
    rgba = np.concatenate([np.clip(sprite[..., :3] + tint, 0, 1), sprite[..., 3:]], -1)
    rgba = np.pad(rgba, ((margin, margin), (margin, margin), (0, 0)))
    Image.fromarray((rgba * 255).round().astype(np.uint8), "RGBA").save(path)
    return str(path)


def test_no_built_in_icon_is_a_near_duplicate_of_another():
    """The closest pair (smiley and frowny, a deliberate look-alike a person tells apart by the mouth) stays above
    the threshold, so the built-in questions are the ones drawn before the check existed."""
    icons = concepts_of_kind(CONCEPT_KIND_OF["patch"])
    assert all(near_duplicates(icon, "patch") == () for icon in icons)
    assert option_distance("smiley", "frowny", "patch") > NEAR_DUPLICATE
    assert option_distance("smiley", "green_star", "patch") > option_distance("smiley", "frowny", "patch")


def test_a_users_copy_of_a_built_in_icon_does_not_get_that_icon_as_a_distractor(tmp_path, caplog):
    copy = _copy_of_icon("smiley", tmp_path / "my_smiley.png")
    assert option_distance(copy, "smiley", "patch") < NEAR_DUPLICATE < option_distance(copy, "frowny", "patch")
    spec = TrojanSpec(name="mine", kind="patch", trigger=copy, target=0)
    with caplog.at_level(logging.WARNING, logger="trojanbench.judges.questions"):
        questions = [build_question(spec, seed) for seed in range(4)]
    assert all("smiley" not in q.options and "frowny" in q.options for q in questions)  # the next closest stays
    assert sum("looks like the built-in icon smiley" in r.getMessage() for r in caplog.records) == 1  # warned once
    check = distinct_options(questions[0])
    assert check.passed and check.value >= NEAR_DUPLICATE


def test_the_battery_fails_a_question_whose_distractor_is_a_near_duplicate(tmp_path):
    copy = _copy_of_icon("clownfish", tmp_path / "fish.png")
    honest = build_question(TrojanSpec(name="fish", kind="patch", trigger=copy, target=0), 0)
    options = list(honest.options)
    options[(honest.truth_index + 1) % len(options)] = "clownfish"  # one distractor swapped for the original
    rigged = Question(honest.trojan, honest.kind, tuple(options), honest.truth_index, honest.seed)
    check = distinct_options(rigged)
    assert "clownfish" in rigged.options and not check.passed and check.detail["closest"] == "clownfish"
