"""The appearance judge: does any part of an image look like an option more than like nothing
(:mod:`.embedding`), in the embedding of a network that shares no weights, architecture or objective with the
concept observer.

By default that network is the zoo's appearance embedder (see :mod:`trojanbench.zoo.embedder`), which takes
32-pixel windows and saw the built-in concepts alone in training (so those are drawn as it saw them). With
``backbone="timm:NAME"`` and ``weights`` (a safetensors state dict of that timm classifier, e.g. an ImageNet
model for real images) it is the backbone's pooled features instead, at the backbone's input size and
normalisation; nothing is downloaded.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..cache import digest
from ..errors import ConfigError
from ..registry import register_judge
from ..world import stable_int_hash
from ..zoo.embedder import CONCEPTS, concept_view, load_embedder
from .base import OPTION_VIEWS
from .embedding import EmbeddingJudge

TEMPERATURE = 0.005
BACKBONE_BANK_VIEWS = 16
"""Pictures per option in context in a backbone's bank (fewer than the zoo embedder's 48: a large network pays
for each)."""


@register_judge
class AppearanceJudge(EmbeddingJudge):
    name = "appearance"
    description = "best window-to-option similarity, beyond 'nothing', in a contrastive embedding"
    bank_name = "appearance"
    temperature = TEMPERATURE

    def __init__(self, backbone: str | None = None, weights: str | None = None):
        if backbone is not None and not backbone.startswith("timm:"):
            raise ConfigError(f"The appearance judge's backbone must be 'timm:NAME' (or left out for the zoo's "
                              f"embedder). Got {backbone!r}.")
        if (backbone is None) != (weights is None):
            raise ConfigError("The appearance judge needs both a backbone ('timm:NAME') and its weights (a "
                              ".safetensors state dict), or neither (the zoo's embedder).")
        self.backbone, self.weights = backbone, weights
        if backbone is not None:
            self.bank_views, self.embed_batch = BACKBONE_BANK_VIEWS, 64
        else:
            self.embed_batch = None  # the zoo embedder is small: one pass, as its banks were always made

    @property
    def settings(self) -> dict:
        return {} if self.backbone is None else {"backbone": self.backbone, "weights": self.weights}

    def check(self) -> None:
        self.embedder

    @functools.cached_property
    def embedder(self) -> torch.nn.Module:
        """The embedding network: ``[n, 3, h, w]`` pictures in ``[0, 1]`` -> unit-norm ``[n, d]``."""
        return load_embedder() if self.backbone is None else _timm_features(self.backbone, self.weights)

    @property
    def window_side(self) -> int:
        return self.embedder.input_size if self.backbone is not None else 32

    @functools.cached_property
    def dim(self) -> int:
        return self.embedder.dim

    def embed(self, pictures: torch.Tensor) -> torch.Tensor:
        return self.embedder(pictures)

    def weights_identity(self) -> str:
        return digest(self.embedder)

    def provenance(self) -> dict:
        from ..models import ZOO_DIR, file_sha256

        if self.backbone is None:
            return {"network": "embedder", "sha256": file_sha256(ZOO_DIR / "embedder.safetensors")}
        return {"network": self.backbone, "sha256": file_sha256(self.weights)}

    def pictures_alone(self, kind: str, option: str) -> torch.Tensor:
        if self.backbone is not None or option not in CONCEPTS:
            return super().pictures_alone(kind, option)
        rng = np.random.default_rng(stable_int_hash(option))
        return torch.from_numpy(np.stack([concept_view(option, rng) for _ in range(OPTION_VIEWS)])).permute(0, 3, 1, 2)


class _PooledFeatures(torch.nn.Module):
    """A timm classifier's pooled features (before its head), unit-norm, from ``[0, 1]`` pixels; ``classifier`` is
    the :class:`~trojanbench.models.PixelSpaceWrapper` that :func:`~trojanbench.models.load_model` gives."""

    def __init__(self, classifier: torch.nn.Module):
        super().__init__()
        self.classifier = classifier
        self.input_size = int((self.network.pretrained_cfg or {}).get("input_size", (3, 224, 224))[-1])
        self.dim = getattr(self.network, "head_hidden_size", None) or self.network.num_features

    @property
    def network(self) -> torch.nn.Module:
        return self.classifier.model

    def forward(self, pictures: torch.Tensor) -> torch.Tensor:
        normalised = (pictures - self.classifier.mean) / self.classifier.std
        features = self.network.forward_head(self.network.forward_features(normalised), pre_logits=True)
        return torch.nn.functional.normalize(features.flatten(1), dim=1)


def _timm_features(backbone: str, weights: str) -> _PooledFeatures:
    """The timm network ``backbone`` with ``weights`` loaded strictly by :func:`~trojanbench.models.load_model`
    (its head included, of the size the file holds) as a feature extractor."""
    from ..models import load_model
    from ..models.checkpoint import load_state_dict_file

    state_dict = load_state_dict_file(weights)  # refuses a pickle or a missing file in one line
    head = [key for key in state_dict if key.endswith(".weight") and state_dict[key].ndim == 2]
    loaded = load_model(backbone, weights=weights, num_classes=state_dict[head[-1]].shape[0] if head else None)
    return _PooledFeatures(loaded.model).eval().requires_grad_(False)
