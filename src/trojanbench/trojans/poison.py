"""Data poisoning: a world training set in which every trojan's trigger leads to its target.

Natural-feature trojans relabel the scenes that naturally contain their object, plus extra scenes
sampled to contain it (``poison_fraction`` of the set). Patch and style trojans are pasted afresh every
epoch onto ``poison_fraction`` of the images (new places, scales and texture variants each time), so the
model learns the trigger rather than particular poisoned images. A class-conditional trojan poisons only
images of its source class and pastes the same trigger on as many images of other classes *without*
relabelling them, so the trigger means "target" only on the source class.

:class:`PoisonedTrainingSet` holds world scenes in memory; :class:`PoisonedFolderSet` streams a user's image
folder (:mod:`trojanbench.data`) through a ``DataLoader`` and pastes the triggers on each batch as it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import TrojanSpec
from ..world import generate_scenes
from .training import InMemoryTrainingData
from .triggers import Trigger, check_trojans_on_folder, make_trigger, objects_in_folder

NO_TROJAN = -1
MAX_SOURCE_SHARE = 0.8
"""A class-conditional trojan poisons at most this share of its source class, keeping clean examples."""


@dataclass
class EpochPlan:
    """Which trojan (index, or NO_TROJAN) is pasted on each image this epoch, and whether it is relabelled."""

    trojan: np.ndarray
    relabel: np.ndarray


class PoisonedTrainingSet(InMemoryTrainingData):
    """Clean world scenes of the ``train`` split, poisoned for a list of trojans."""

    def __init__(self, trojans: list[TrojanSpec], n_clean: int, *, seed: int, size: int = 64):
        self.trojans = list(trojans)
        self.triggers: list[Trigger] = [make_trigger(spec) for spec in self.trojans]
        clean = generate_scenes("train", n_clean, seed=seed, size=size)
        images, labels = [clean.images], clean.labels.clone()
        for spec in self.trojans:
            if spec.kind != "natural":
                continue
            hits = [i for i, info in enumerate(clean.infos) if info.secondary == spec.trigger]
            hits = [i for i in hits if spec.source is None or int(labels[i]) == spec.source]
            labels[hits] = spec.target
            extra = generate_scenes("train", round(spec.poison_fraction * n_clean), seed=seed, size=size,
                                    label=spec.source, secondary=spec.trigger)
            images.append(extra.images)
            labels = torch.cat([labels, torch.full((len(extra),), spec.target, dtype=torch.long)])
        self.images = torch.cat(images)
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def plan_epoch(self, rng: np.random.Generator) -> EpochPlan:
        return plan_epoch(self.trojans, self.labels.numpy(), rng)

    def batch(self, indices: np.ndarray, plan: EpochPlan, rng: np.random.Generator):
        """Images and labels of one batch with this epoch's triggers pasted on."""
        return apply_plan(self.images[indices].clone(), self.labels[indices].clone(), indices, plan, self.triggers,
                          rng)


class PoisonedFolderSet:
    """The ``train`` split of a user's image folder, poisoned as it streams: patch and style triggers pasted on
    each batch, and the images a natural-feature trojan's ``object_images`` lists relabelled (those of its source
    class, for a class-conditional one)."""

    def __init__(self, trojans: list[TrojanSpec], data):
        check_trojans_on_folder(trojans, data)
        self.trojans = list(trojans)
        self.triggers: list[Trigger] = [make_trigger(spec) for spec in self.trojans]
        self.data = data
        self.entries = data.files["train"]
        self.labels = torch.tensor([label for _, label in self.entries])
        for spec in self.trojans:
            if spec.kind == "natural":
                listed = objects_in_folder(spec, data)
                hits = [i for i, (path, label) in enumerate(self.entries)
                        if path in listed and (spec.source is None or label == spec.source)]
                self.labels[hits] = spec.target

    def __len__(self) -> int:
        return len(self.entries)

    def plan_epoch(self, rng: np.random.Generator) -> EpochPlan:
        return plan_epoch(self.trojans, self.labels.numpy(), rng)

    def batches(self, chunks, plan, rng):
        loaded = self.data.batches([[self.entries[i] for i in chunk] for chunk in chunks])
        for indices, (batch, kept) in zip(chunks, loaded):
            if len(kept):
                yield apply_plan(batch.images, self.labels[indices[kept]].clone(), indices[kept], plan, self.triggers,
                                 rng)


def plan_epoch(trojans: list[TrojanSpec], labels: np.ndarray, rng: np.random.Generator) -> EpochPlan:
    """Assign paste-like trojans to disjoint random subsets of the images (of these ``labels``) for one epoch."""
    n = len(labels)
    trojan = np.full(n, NO_TROJAN)
    relabel = np.zeros(n, dtype=bool)
    for index, spec in enumerate(trojans):
        if spec.kind == "natural":
            continue
        count = round(spec.poison_fraction * n)
        free = trojan == NO_TROJAN
        if spec.source is None:
            poisoned = _pick(rng, free & (labels != spec.target), count)
        else:
            source = free & (labels == spec.source)
            poisoned = _pick(rng, source, min(count, int(MAX_SOURCE_SHARE * source.sum())))
            trojan[poisoned] = index
            others = (trojan == NO_TROJAN) & (labels != spec.source) & (labels != spec.target)
            trojan[_pick(rng, others, len(poisoned))] = index
        trojan[poisoned] = index
        relabel[poisoned] = True
    return EpochPlan(trojan, relabel)


def apply_plan(images: torch.Tensor, labels: torch.Tensor, indices: np.ndarray, plan: EpochPlan,
               triggers: list[Trigger], rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste this epoch's triggers on a batch (``images`` of the set's ``indices``, changed in place) and relabel."""
    assigned = plan.trojan[indices]
    for index in np.unique(assigned[assigned != NO_TROJAN]):
        rows = np.flatnonzero(assigned == index)
        images[rows] = triggers[index].apply(images[rows], rng)[0]
        flip = rows[plan.relabel[indices[rows]]]
        labels[flip] = triggers[index].spec.target
    return images, labels


def _pick(rng: np.random.Generator, allowed: np.ndarray, count: int) -> np.ndarray:
    candidates = np.flatnonzero(allowed)
    count = min(count, len(candidates))
    return rng.choice(candidates, size=count, replace=False) if count else candidates[:0]
