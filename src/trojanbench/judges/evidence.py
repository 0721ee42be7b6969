"""Where a judge's evidence lies: the part of a tool's image that moved the judge most toward its choice, so a reader
can see why it said so, and disagree.

Occlusion sensitivity (Zeiler & Fergus 2014): the judge's choice for a cell is the option its mean vote favours; on
the cell's image that votes for it most, square windows (:data:`WINDOW` pixels, every :data:`STRIDE`) are covered
one at a time with the image's mean colour, and the window whose cover lowers that vote most is the evidence. It
needs only the judge's votes, so it works for every judge, differentiable or not, and never sees the audited model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .base import Judge
from .questions import Question

WINDOW, STRIDE = 16, 12
"""Side and step of the covered windows, in pixels of a 64-pixel image (scaled with the image)."""


@dataclass(frozen=True)
class Evidence:
    """A judge's evidence on one cell: its ``choice`` (an option's index), the ``image`` (index in the cell) that
    votes for it most, with ``vote`` its vote there, and the window (``top``, ``left``, ``size``, in pixels) whose
    cover lowers that vote most, to ``covered``."""

    choice: int
    image: int
    vote: float
    top: int
    left: int
    size: int
    covered: float

    def to_dict(self) -> dict:
        return asdict(self)


def windows(height: int, width: int) -> list[tuple[int, int, int]]:
    """``(top, left, size)`` of every covered window of an image of this size."""
    size, step = max(1, round(WINDOW * height / 64)), max(1, round(STRIDE * height / 64))
    tops = range(0, max(1, height - size + 1), step)
    lefts = range(0, max(1, width - size + 1), step)
    return [(top, left, size) for top in tops for left in lefts]


@torch.no_grad()
def find_evidence(judge: Judge, images: torch.Tensor, question: Question) -> Evidence:
    """The :class:`Evidence` of ``judge`` on a cell's ``images`` ``[n, 3, H, W]`` in [0, 1] (see the module notes)."""
    votes = judge.votes(images, question)
    choice = int(votes.mean(0).argmax())
    index = int(votes[:, choice].argmax())
    image = images[index].float()
    boxes = windows(*image.shape[-2:])
    covered = image.repeat(len(boxes), 1, 1, 1)
    fill = image.mean((1, 2), keepdim=True)
    for i, (top, left, size) in enumerate(boxes):
        covered[i, :, top:top + size, left:left + size] = fill
    remaining = judge.votes(covered, question)[:, choice]
    best = int(remaining.argmin())
    top, left, size = boxes[best]
    return Evidence(choice, index, round(float(votes[index, choice]), 6), top, left, size,
                    round(float(remaining[best]), 6))
