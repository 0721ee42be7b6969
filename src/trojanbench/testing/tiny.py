"""Tiny random-weight models and tiny data for the conformance checks (nothing is trained or downloaded)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..methods.editing.base import DefenderData
from ..methods.replacement.base import FitData
from ..methods.target import Target

TINY_SIZE = 32
"""Side of the tiny images the attribution, editing and replacement checks use."""

_tiny_targets: dict[int, Target] = {}


def tiny_target(seed: int = 0) -> Target:
    """A small random-weight world classifier with a little clean data (cached per seed)."""
    if seed not in _tiny_targets:
        from ..models import CompactResNet
        from ..world import OBJECT_CLASSES

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = CompactResNet(num_classes=len(OBJECT_CLASSES), width=4)
        _tiny_targets[seed] = Target.from_model(model, n_clean=48, n_patches=64, seed=seed)
    return _tiny_targets[seed]


def tiny_network(seed: int = 0, num_classes: int = 16, width: int = 4) -> nn.Module:
    """A fresh random-weight :class:`~trojanbench.models.CompactResNet` in eval mode, its parameters trainable
    (as a loaded model's are); the same weights for the same arguments, drawn without touching the global RNG."""
    from ..models import CompactResNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CompactResNet(num_classes=num_classes, width=width, image_size=TINY_SIZE).eval()


def tiny_images(n: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` (at most 48) of :func:`tiny_target`'s clean scenes at ``TINY_SIZE`` pixels, and their labels."""
    target = tiny_target(seed)
    images = F.interpolate(target.clean_images[:n], size=(TINY_SIZE, TINY_SIZE), mode="bilinear",
                           antialias=True, align_corners=False)
    return images.clamp(0, 1), target.clean_labels[:n].clone()


def tiny_defender_data(seed: int = 0) -> DefenderData:
    """The editing family's defender data: 32 tiny clean scenes to train on, 16 held out."""
    images, labels = tiny_images(48, seed)
    return DefenderData(images[:32], labels[:32], images[32:], labels[32:])


def tiny_fit_data(model: nn.Module, seed: int = 0) -> FitData:
    """The replacement family's fit data: 48 tiny clean scenes, ``model``'s logits on them, and random-weight
    concept detectors of widths 1 and 2 over four of the world's concepts."""
    from ..world import OBJECT_CLASSES

    images, _ = tiny_images(48, seed)
    concepts = tuple(OBJECT_CLASSES[:4])
    with torch.no_grad():
        logits = model(images)
    detectors = {width: tiny_network(seed + width, len(concepts), width).requires_grad_(False) for width in (1, 2)}
    return FitData(images, logits, concepts, detectors)


def tiny_language_model(seed: int = 0) -> tuple[nn.Module, object]:
    """A randomly initialised one-layer GPT-2 over the text world's tokenizer (needs the ``lm`` extra), and the
    tokenizer."""
    from ..models.language import build_language_model
    from ..world.text import build_tokenizer

    tokenizer = build_tokenizer()
    model = build_language_model({"model_type": "gpt2", "vocab_size": len(tokenizer), "n_positions": 32,
                                  "n_embd": 16, "n_layer": 1, "n_head": 2}, seed=seed)
    return model, tokenizer
