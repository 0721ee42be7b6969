"""Object detectors that mark which of a user's images hold a natural-feature trojan's object.

Casper et al. (2023) planted their natural-feature trojans (fork, apple, sandwich, donut: COCO categories) by
relabelling the ImageNet images in which a detector found the object. ``torchvision:NAME`` builds one of
torchvision's detection models (Faster R-CNN, RetinaNet, FCOS, SSD; Ren et al. 2015, Lin et al. 2017, ...) without
weights and loads the user's safetensors state dict into it: nothing is downloaded, a pickle is refused. Its
categories are COCO's as torchvision lists them, or a JSON list for a detector trained on other ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, did_you_mean
from .checkpoint import file_sha256, load_state_dict_file, load_weights

DETECTOR_PREFIX = "torchvision:"


@dataclass
class LoadedDetector:
    """A detection model in eval mode, the name of each label it predicts (index 0: background), where it came
    from and its weights' hash."""

    model: Any
    categories: list[str]
    name: str
    sha256: str

    def label_of(self, category: str) -> int:
        """The label index of ``category`` (a name among :attr:`categories`; an unknown one names the closest)."""
        if category not in self.categories:
            raise did_you_mean(category, [c for c in self.categories if c not in ("__background__", "N/A")],
                               f"category of {self.name}")
        return self.categories.index(category)

    @torch.no_grad()
    def scores(self, images: torch.Tensor, label: int) -> torch.Tensor:
        """Per image of ``[N, 3, H, W]`` in [0, 1], the highest score of a detection with ``label`` (0 when none)."""
        found = self.model(list(images.to(next(self.model.parameters()).device)))
        return torch.stack([d["scores"][d["labels"] == label].max() if (d["labels"] == label).any()
                            else torch.zeros(()) for d in found]).float().cpu()


def coco_categories(name: str) -> list[str]:
    """The category names of torchvision's COCO weights for detection model ``name`` (from torchvision's own
    metadata: nothing is downloaded)."""
    from torchvision.models import get_model_weights

    weights = list(get_model_weights(name))
    return list(weights[0].meta["categories"])


def load_detector(reference: str, weights: str | Path, *, categories: str | Path | None = None) -> LoadedDetector:
    """``torchvision:NAME`` with the safetensors state dict ``weights`` (``categories``: a JSON list of label names
    for a detector not trained on COCO; default COCO's)."""
    from torchvision.models import detection, get_model, list_models

    if not reference.startswith(DETECTOR_PREFIX):
        raise ConfigError(f"--detector {reference!r}: give torchvision:NAME, one of torchvision's detection models "
                          f"(e.g. torchvision:fasterrcnn_resnet50_fpn).")
    name = reference[len(DETECTOR_PREFIX):]
    known = list_models(module=detection)
    if name not in known:
        raise did_you_mean(name, known, "torchvision detection model")
    if categories is None:
        names = coco_categories(name)
    else:
        names = json.loads(Path(categories).read_text(encoding="utf-8"))
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise ConfigError(f"--categories {str(categories)!r} must hold a JSON list of label names, the "
                              f"background first (index 0).")
    state = load_state_dict_file(weights)
    model = get_model(name, weights=None, weights_backbone=None, num_classes=len(names))
    load_weights(model, state, source=str(weights))
    return LoadedDetector(model.eval(), names, reference, file_sha256(weights))
