"""Baselines every tool is reported beside: the chance floor, what data alone offers, and the oracle."""

from __future__ import annotations

import numpy as np
import torch

from ..config import TrojanSpec
from ..errors import MethodError
from ..params import InstanceOf
from ..registry import register_method
from .base import SynthesisMethod


@register_method
class RandomNoise(SynthesisMethod):
    """Uniform pixel noise: the chance floor a useful tool must beat."""

    name = "random_noise"
    paper = "baseline"
    is_baseline = True

    def _synthesize(self, target, target_class, n_images, generator, source_class):
        return torch.rand(n_images, 3, target.image_size, target.image_size, generator=generator)


@register_method
class DatasetExemplars(SynthesisMethod):
    """The auditor's held-out clean images the model scores highest for the target class.

    What a non-synthesis tool offers (Borowski et al. 2021 found natural exemplars hard to beat for
    explaining units). For a class-conditional trojan, images of the source class are ranked (all
    images when the auditor has fewer of that class than asked for). The ranking is deterministic.
    """

    name = "dataset_exemplars"
    paper = "baseline (Borowski et al. 2021)"
    is_baseline = True

    @torch.no_grad()
    def _synthesize(self, target, target_class, n_images, generator, source_class):
        images = target.clean_images
        if source_class is not None and int((target.clean_labels == source_class).sum()) >= n_images:
            images = images[target.clean_labels == source_class]
        if len(images) < n_images:
            raise MethodError(f"dataset_exemplars needs {n_images} clean images but the target has {len(images)}.")
        scores = torch.cat([target.model(images[i:i + 256]).log_softmax(1)[:, target_class]
                            for i in range(0, len(images), 256)])
        return images[scores.argsort(descending=True, stable=True)[:n_images]].clone()


@register_method
class Oracle(SynthesisMethod):
    """Renders the true trigger in held-out scenes: the ceiling, used to validate judges.

    It is the only method that sees the ground truth (given by :meth:`with_ground_truth`), so it is
    flagged ``is_oracle`` and never ranks as a tool.
    """

    name = "oracle"
    paper = "baseline (ground truth)"
    is_baseline = True
    is_oracle = True
    parameter_constraints = {"trojan": InstanceOf(dict, optional=True)}

    def __init__(self, trojan: dict | None = None):
        self.trojan = trojan

    def with_ground_truth(self, spec: TrojanSpec) -> "Oracle":
        """A copy that knows the trojan it renders."""
        return Oracle(trojan=spec.to_dict())

    def _synthesize(self, target, target_class, n_images, generator, source_class):
        from ..trojans.triggers import make_trigger

        if self.trojan is None:
            raise MethodError("The oracle renders the true trigger and must be given it: "
                              "use Oracle().with_ground_truth(trojan_spec).")
        spec = TrojanSpec(**self.trojan)
        seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator))
        trigger, images = make_trigger(spec), []
        while sum(map(len, images)) < n_images:  # a small image folder may hold fewer than n_images of a class
            drawn, _ = trigger.triggered_scenes("test", n_images, int(np.uint32(seed + len(images))),
                                                label=spec.source, data=target.data)
            images.append(drawn)
        images = torch.cat(images)[:n_images]
        return images.clamp(0, 1)
