"""The concept judge: the zoo's concept observer names what the images show.

Each option is described by the observer's mean evidence (sigmoid outputs over the concepts of the
option's kind) on held-out pictures of it; for a built-in concept this is close to one-hot on the concept
itself. An image's score for an option is that description weighted against the image's concept logits,
so for built-in concepts it is simply the observer's logit for the option's concept.

The observer knows only the world's vocabulary: like a closed-vocabulary classifier, it describes a user's
own trigger image by the concepts it resembles, which may not tell it from look-alike distractors. Such
options are logged with a warning; the judge-validity battery of the run (:mod:`.battery`) says whether either
judge can be trusted on such a trigger.
"""

from __future__ import annotations

import functools
import logging

import torch

from ..models import load_model
from ..world import VOCABULARY
from ..zoo.observer import CONCEPTS
from ..registry import register_judge
from .base import Judge, option_views
from .questions import CONCEPT_KIND_OF, Question

log = logging.getLogger(__name__)


@register_judge
class ConceptJudge(Judge):
    name = "concept"
    description = "the concept observer's evidence for each option's concepts (a laptop-scale CLIP stand-in)"

    @functools.cached_property
    def observer(self):
        return load_model("observer")

    def provenance(self) -> dict:
        return {"network": "observer", "sha256": self.observer.sha256}

    def _columns(self, kind: str) -> list[int]:
        concept_kind = CONCEPT_KIND_OF[kind]
        return [i for i, c in enumerate(CONCEPTS) if VOCABULARY[c].kind is concept_kind]

    @functools.lru_cache(maxsize=256)
    def _description(self, kind: str, option: str) -> torch.Tensor:
        if option not in CONCEPTS:
            log.warning("the concept judge does not know %r (not a built-in concept) and describes it by the "
                        "concepts it resembles; read the judges' validity battery on it before trusting either judge",
                        option)
        evidence = self.observer.model(option_views(kind, option))[:, self._columns(kind)].sigmoid().mean(0)
        return evidence / evidence.sum().clamp_min(1e-6)

    def option_scores(self, images: torch.Tensor, question: Question) -> torch.Tensor:
        logits = self.observer.model(images)[:, self._columns(question.kind)]
        weights = torch.stack([self._description(question.kind, option) for option in question.options])
        return logits @ weights.T
