"""The robust judge: the zoo's adversarially trained observer (:mod:`trojanbench.zoo.robust`) names what the images
show, with evidence an imperceptible change cannot fake.

Per image and question, the network's softmax over the concepts of the question's kind and "none of them" gives
``p(c)`` and ``p(none)``; an option's logit against "none" is ``log(sum_c w_c p(c)) - log p(none)``, with ``w`` the
option's description (:mod:`.vocabulary`), so for a built-in concept it is close to ``log p(option) - log p(none)``.
"""

from __future__ import annotations

import functools

import torch

from ..registry import register_judge
from .base import at_network_size
from .questions import CONCEPT_KIND_OF, Question
from .vocabulary import VocabularyJudge


@register_judge
class RobustJudge(VocabularyJudge):
    name = "robust"
    description = "an adversarially trained observer's odds of each option against 'none' (perceptually aligned)"

    @functools.cached_property
    def network(self):
        from ..zoo.robust import load_robust_observer

        return load_robust_observer()

    def provenance(self) -> dict:
        from ..models import ZOO_DIR, file_sha256

        return {"network": "robust", "sha256": file_sha256(ZOO_DIR / "robust.safetensors")}

    def _log_probabilities(self, images: torch.Tensor, kind: str) -> torch.Tensor:
        from ..zoo.robust import kind_log_probabilities

        return kind_log_probabilities(self.network(at_network_size(images)), CONCEPT_KIND_OF[kind])

    def concept_evidence(self, images: torch.Tensor, kind: str) -> torch.Tensor:
        return self._log_probabilities(images, kind)[:, :-1].exp()

    def option_scores(self, images: torch.Tensor, question: Question) -> torch.Tensor:
        log_p = self._log_probabilities(images, question.kind)
        weights = self.descriptions(question.kind, question.options).clamp_min(1e-12).log()
        return torch.logsumexp(log_p[:, None, :-1] + weights[None], -1) - log_p[:, -1:]
