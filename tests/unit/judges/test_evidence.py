"""Judges show their evidence: occlusion finds the window a judge's choice rests on."""

from __future__ import annotations

import pytest
import torch

from trojanbench.config import TrojanSpec
from trojanbench.judges import Judge, build_question
from trojanbench.judges.evidence import WINDOW, find_evidence, windows

SMILEY = TrojanSpec(name="smiley", kind="patch", trigger="smiley", target=3)


class SeesRedAt(Judge):
    """Votes for option 0 by how red one square of the image is, and sees nothing anywhere else."""

    name = "sees_red_at"

    def __init__(self, top: int, left: int):
        self.top, self.left = top, left

    def option_scores(self, images, question):
        square = images[:, :, self.top:self.top + WINDOW, self.left:self.left + WINDOW]
        logits = torch.zeros(len(images), len(question.options))
        logits[:, 0] = 20 * (square[:, 0] - square[:, 1:].mean(1)).mean((1, 2))
        return logits


@pytest.mark.parametrize("top, left", [(0, 0), (24, 36), (48, 48)])
def test_the_evidence_is_the_window_the_judge_looks_at(top, left):
    images = torch.full((3, 3, 64, 64), 0.5)
    images[1, 0, top:top + WINDOW, left:left + WINDOW] = 1.0  # red where the judge looks: the top vote for option 0
    question = build_question(SMILEY, 0)
    found = find_evidence(SeesRedAt(top, left), images, question)
    assert (found.choice, found.image) == (0, 1)
    assert (found.top, found.left, found.size) == (top, left, WINDOW)
    assert found.covered < found.vote  # covering it takes the red away


def test_windows_cover_the_whole_image_and_scale_with_it():
    boxes = windows(64, 64)
    assert {(t, l) for t, l, _ in boxes} >= {(0, 0), (48, 48)} and all(s == WINDOW for _, _, s in boxes)
    assert all(s == 2 * WINDOW for _, _, s in windows(128, 128))
    covered = torch.zeros(64, 64, dtype=torch.bool)
    for top, left, size in boxes:
        covered[top:top + size, left:left + size] = True
    assert covered.all()
