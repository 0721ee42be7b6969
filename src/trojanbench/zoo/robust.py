"""The robust observer: the third judge's network, adversarially trained so that what moves it is what a person sees.

Robust features are perceptually aligned (Engstrom et al. 2019, Santurkar et al. 2019): a network trained on
adversarial examples (Madry et al. 2018) cannot be swayed by imperceptible pixel changes, so the evidence it needs
for a concept is evidence a person could see. It shares nothing with the other judges' networks:

* architecture: a ConvMixer (Trockman & Kolter 2022): a patch-embedding stem, then depthwise convolutions (residual)
  and pointwise convolutions with GELU and BatchNorm, at one resolution throughout, instead of the concept
  observer's residual CNN or the appearance embedder's plain strided conv net;
* objective: one softmax per kind of concept (objects, icons, textures, secondary objects), each with a "none of
  this kind" class, trained on L∞ PGD examples, instead of multi-label classification or contrastive learning;
* weights and data: trained from scratch, on renders of the world's vocabulary under a salt of its own.

Like the concept observer it never sees a trojaned model or a trojaned label.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .._version import __version__
from ..adversarial import linf_pgd
from ..models import save_checkpoint
from ..trojans.training import NewDisplay, TrainConfig, train
from ..world import VOCABULARY, ConceptKind
from .observer import CONCEPTS, ObserverTrainingSet, held_out_examples, mean_accuracy_by_kind, observer_accuracy
from .parts import load_part

log = logging.getLogger(__name__)

ARCHITECTURE = "conv_mixer"
KINDS: tuple[ConceptKind, ...] = tuple(ConceptKind)
"""The kinds of concept, in the order of the network's "none" outputs (after the :data:`CONCEPTS` logits)."""
TRAIN_EPSILON = 6 / 255
"""L∞ radius of the training attack: above the 4/255 at which the battery attacks every judge, so the judge keeps a
margin there."""
TRAIN_STEPS = 1
"""One step from a random start with step 1.25 epsilon: "fast" adversarial training (Wong et al. 2020), as robust as
multi-step PGD training at a fraction of its cost."""


def kind_columns(kind: ConceptKind) -> list[int]:
    """Indices of the concepts of ``kind`` among the network's outputs."""
    return [i for i, c in enumerate(CONCEPTS) if VOCABULARY[c].kind is kind]


def none_column(kind: ConceptKind) -> int:
    """Index of the "no concept of ``kind``" output."""
    return len(CONCEPTS) + KINDS.index(kind)


class _Residual(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.inner(x)


class ConvMixer(nn.Module):
    """``[B, 3, H, W]`` pictures in ``[0, 1]`` -> ``[B, n_outputs]`` logits (Trockman & Kolter 2022)."""

    def __init__(self, n_outputs: int, dim: int = 128, depth: int = 8, patch: int = 8, kernel: int = 3) -> None:
        super().__init__()
        self.n_outputs, self.dim, self.depth = n_outputs, dim, depth
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, 3, 1, 1), 0.25))
        mix = [nn.Sequential(_Residual(nn.Sequential(nn.Conv2d(dim, dim, kernel, groups=dim, padding="same"),
                                                     nn.GELU(), nn.BatchNorm2d(dim))),
                             nn.Conv2d(dim, dim, 1), nn.GELU(), nn.BatchNorm2d(dim)) for _ in range(depth)]
        self.body = nn.Sequential(nn.Conv2d(3, dim, patch, stride=patch), nn.GELU(), nn.BatchNorm2d(dim), *mix,
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(dim, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body((x - self.mean) / self.std))


def kind_log_probabilities(logits: torch.Tensor, kind: ConceptKind) -> torch.Tensor:
    """``[n, n_concepts_of_kind + 1]`` log-probabilities over ``kind``'s concepts and, last, "none of them"."""
    return torch.log_softmax(logits[:, kind_columns(kind) + [none_column(kind)]], 1)


def robust_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each kind's softmax against what the image shows of that kind (shared evenly when it shows
    two, "none" when it shows none), summed over kinds and averaged over images; ``targets`` are the multi-label
    ``[n, len(CONCEPTS)]`` indicators of :class:`~trojanbench.zoo.observer.ObserverTrainingSet`."""
    loss = logits.new_zeros(())
    for kind in KINDS:
        shown = targets[:, kind_columns(kind)]
        wanted = torch.cat([shown, (shown.sum(1, keepdim=True) == 0).float()], 1)
        wanted = wanted / wanted.sum(1, keepdim=True)
        loss = loss - (wanted * kind_log_probabilities(logits, kind)).sum(1).mean()
    return loss


def adversarial_examples(epsilon: float = TRAIN_EPSILON, steps: int = TRAIN_STEPS, seed: int = 0):
    """``perturb(model, images, targets)`` for :func:`~trojanbench.trojans.training.train`: signed-gradient steps of
    1.25 ``epsilon`` from a random start that raise :func:`robust_loss` within L∞ ``epsilon``."""
    generator = torch.Generator().manual_seed(seed)

    def perturb(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return linf_pgd(images, lambda x: robust_loss(model(x), targets), epsilon, steps,
                        step_size=1.25 * epsilon, generator=generator)

    return perturb


@torch.no_grad()
def attacked_accuracy(network: nn.Module, *, epsilon: float, n_per_concept: int, seed: int = 0) -> dict[str, float]:
    """Per kind: how often the concept shown is still ranked first among its kind's concepts after PGD (10 steps)
    within L∞ ``epsilon`` lowers its log-probability (held-out pictures)."""
    out: dict[str, list[float]] = {}
    for name in CONCEPTS:
        kind = VOCABULARY[name].kind
        columns = kind_columns(kind)
        target = columns.index(CONCEPTS.index(name))
        images = held_out_examples(name, n_per_concept, seed=seed)
        moved = linf_pgd(images, lambda x: -kind_log_probabilities(network(x), kind)[:, target].sum(), epsilon, 10)
        kept = (network(moved)[:, columns].argmax(1) == target).float().mean().item()
        out.setdefault(kind.value, []).append(kept)
    return {kind: round(float(np.mean(values)), 4) for kind, values in out.items()}


def build_robust_observer(out_dir: Path, profile_name: str, config: TrainConfig, *, n_eval: int,
                          progress: NewDisplay | None = None) -> Path:
    """Adversarially train the robust observer on fresh renders of the vocabulary; its card records clean and
    attacked accuracy per kind."""
    torch.manual_seed(config.seed)
    arch_kwargs = {"n_outputs": len(CONCEPTS) + len(KINDS)}
    network = ConvMixer(**arch_kwargs)
    start = time.perf_counter()
    data = ObserverTrainingSet(config.n_train, seed=config.world_seed, size=config.image_size, salt="robust")
    training_log = train(network, data, config, loss_fn=robust_loss, perturb=adversarial_examples(seed=config.seed),
                         progress=progress, name="robust")
    network.eval()
    accuracy = observer_accuracy(network, n_per_concept=n_eval, size=config.image_size)
    card = {"name": "robust", "kind": "adversarially_trained", "concepts": list(CONCEPTS),
            "outputs": list(CONCEPTS) + [f"none:{kind.value}" for kind in KINDS],
            "attack": {"norm": "linf", "epsilon": round(TRAIN_EPSILON, 6), "steps": TRAIN_STEPS},
            "concept_accuracy": accuracy,
            "mean_accuracy_by_kind": mean_accuracy_by_kind(accuracy),
            "attacked_accuracy_by_kind_4_255": attacked_accuracy(network, epsilon=4 / 255,
                                                                 n_per_concept=max(2, n_eval // 4)),
            "n_eval_images_per_concept": n_eval, "profile": profile_name,
            "training": {"config": config.to_dict(), **training_log},
            "trojanbench_version": __version__, "torch_version": torch.__version__,
            "build_seconds": round(time.perf_counter() - start, 1)}
    return save_checkpoint(network, out_dir / "robust.safetensors", card, architecture=ARCHITECTURE,
                           arch_kwargs=arch_kwargs)


def load_robust_observer(path: Path | str | None = None) -> ConvMixer:
    """The shipped robust observer (or the one at ``path``), frozen in eval mode (cached per path)."""
    return load_part("robust", ARCHITECTURE, ConvMixer, path)
