"""Judges whose network names the world's vocabulary (the concept judge, the robust judge).

Each option is described by the network's mean evidence over the concepts of the option's kind on held-out pictures
of it (:func:`~trojanbench.judges.base.option_views`), normalised to sum to 1; for a built-in concept this is close to
one-hot on the concept itself. Such a network knows only the vocabulary: like a closed-vocabulary classifier, it
describes a user's own trigger image by the concepts it resembles, which may not tell it from look-alike distractors.
Such options are logged with a warning; the judge-validity battery of the run (:mod:`.battery`) says whether the
judge can be trusted on such a trigger.
"""

from __future__ import annotations

import functools
import logging

import torch

from ..world import VOCABULARY
from ..zoo.observer import CONCEPTS
from .base import Judge, option_views
from .questions import CONCEPT_KIND_OF

log = logging.getLogger(__name__)


class VocabularyJudge(Judge):
    """Base class: subclasses implement :meth:`concept_evidence` and :meth:`option_scores` (from :meth:`columns` and
    :meth:`descriptions`)."""

    def concept_evidence(self, images: torch.Tensor, kind: str) -> torch.Tensor:
        """``[n, len(columns(kind))]`` how much each image shows each concept of question kind ``kind``, in [0, 1]."""
        raise NotImplementedError

    @staticmethod
    def columns(kind: str) -> list[int]:
        """Indices among :data:`~trojanbench.zoo.observer.CONCEPTS` of the concepts a ``kind`` question asks about."""
        concept_kind = CONCEPT_KIND_OF[kind]
        return [i for i, c in enumerate(CONCEPTS) if VOCABULARY[c].kind is concept_kind]

    @functools.lru_cache(maxsize=256)
    def describe(self, kind: str, option: str) -> torch.Tensor:
        """``[len(columns(kind))]`` weights summing to 1: the concepts ``option`` shows, by the judge's own eyes."""
        if option not in CONCEPTS:
            log.warning("the %s judge does not know %r (not a built-in concept) and describes it by the concepts it "
                        "resembles; read the judges' validity battery on it before trusting the judge", self.name,
                        option)
        with torch.no_grad():
            evidence = self.concept_evidence(option_views(kind, option), kind).mean(0)
        return evidence / evidence.sum().clamp_min(1e-6)

    def descriptions(self, kind: str, options: tuple[str, ...]) -> torch.Tensor:
        """``[n_options, len(columns(kind))]``: :meth:`describe` of each option."""
        return torch.stack([self.describe(kind, option) for option in options])
