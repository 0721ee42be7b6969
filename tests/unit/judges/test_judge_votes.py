"""How a judge turns per-image logits into a distribution over options (hand-checkable fake judges)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trojanbench.errors import ConfigError, UnknownNameError
from trojanbench.judges import Judge, Question, get_judge

QUESTION = Question("t", "patch", tuple(f"o{i}" for i in range(8)), 3, 0)


class _Fixed(Judge):
    name = "fixed_for_test"

    def __init__(self, logits):
        self.logits = torch.tensor(logits, dtype=torch.float32)

    def option_scores(self, images, question):
        return self.logits[: len(images)]


def test_images_that_show_nothing_vote_uniformly():
    scores = _Fixed([[-50.0] * 8] * 2).score(torch.zeros(2, 3, 8, 8), QUESTION)
    assert np.allclose(scores, 1 / 8)


def test_a_clear_image_votes_for_its_option_and_votes_average():
    clear = [-50.0] * 8
    clear[3] = 50.0
    scores = _Fixed([clear, [-50.0] * 8]).score(torch.zeros(2, 3, 8, 8), QUESTION)
    assert scores[3] == pytest.approx(0.5 + 0.5 / 8)
    assert scores.sum() == pytest.approx(1.0)


def test_hand_computed_vote():
    scores = _Fixed([[0.0] * 8]).score(torch.zeros(1, 3, 8, 8), QUESTION)
    # nine equal logits (8 options + "none" at 0): each option 1/9 plus 1/8 of the 1/9 on "none"
    assert scores[0] == pytest.approx(1 / 9 + 1 / 72)


def test_bad_images_and_unknown_judges_are_refused():
    with pytest.raises(ConfigError, match="images shaped"):
        _Fixed([[0.0] * 8]).score(torch.zeros(3, 8, 8), QUESTION)
    with pytest.raises(UnknownNameError, match="Did you mean: concept"):
        get_judge("concpet")
