"""The concept judge: the zoo's concept observer names what the images show.

An image's score for an option is the option's description (:mod:`.vocabulary`: the observer's mean sigmoid evidence
on held-out pictures of it) weighted against the image's concept logits, so for built-in concepts it is simply the
observer's logit for the option's concept.
"""

from __future__ import annotations

import functools

import torch

from ..models import load_model
from ..registry import register_judge
from .base import at_network_size
from .questions import Question
from .vocabulary import VocabularyJudge


@register_judge
class ConceptJudge(VocabularyJudge):
    name = "concept"
    description = "the concept observer's evidence for each option's concepts (a laptop-scale CLIP stand-in)"

    @functools.cached_property
    def observer(self):
        return load_model("observer")

    def provenance(self) -> dict:
        return {"network": "observer", "sha256": self.observer.sha256}

    def concept_evidence(self, images: torch.Tensor, kind: str) -> torch.Tensor:
        return self.observer.model(at_network_size(images))[:, self.columns(kind)].sigmoid()

    def option_scores(self, images: torch.Tensor, question: Question) -> torch.Tensor:
        logits = self.observer.model(at_network_size(images))[:, self.columns(question.kind)]
        return logits @ self.descriptions(question.kind, question.options).T
