"""The replacement family: simpler models fitted to stand in for a network, at a fixed parameter budget.

A :class:`ReplacementMethod` has an inert constructor and declared hyperparameters like every
:class:`~trojanbench.methods.base.Method`, and one entry point, :meth:`ReplacementMethod.replace`: from the
network, the fit data (:class:`FitData`: images the auditor may use, the world concepts each shows, and the
network's logits on them) and a budget of non-zero parameters, it returns a :class:`ReplacementModel` that
predicts classes, counts its own parameters and, if it is interpretable, says which concepts drive a class.

Complexity has one currency, non-zero parameters (:func:`count_nonzero_parameters`): concept detectors count in
full, linear weights and tree nodes count one each, batch-norm statistics fold into the affine weights counted
beside them (the shipped detectors, ``detector_w<width>`` in the zoo, count
their full size too). A method that cannot fit a budget raises :class:`BudgetError`; the task then scores it as the
constant predictor (what any model can do with no parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import ConfigError, MethodError
from ...models.architectures import CompactResNet
from ...params import Interval, require
from ...trojans.measure import predict as network_predictions
from ..base import Method

BATCH = 64


class BudgetError(MethodError):
    """A replacement method cannot fit within the parameter budget it was given."""


def count_nonzero_parameters(module: nn.Module) -> int:
    """Non-zero entries of a module's parameters (buffers such as batch-norm statistics are not counted: in
    eval mode they fold into the per-channel affine weights that are)."""
    return int(sum(int((parameter != 0).sum()) for parameter in module.parameters()))


def compact_width(n_outputs: int, budget: int) -> int:
    """The largest :class:`CompactResNet` width with ``n_outputs`` outputs whose parameters fit ``budget``
    (0 when even width 1 does not fit)."""
    width = 0
    while count_nonzero_parameters(CompactResNet(n_outputs, width + 1)) <= budget:
        width += 1
    return width


def distill(student: nn.Module, images: torch.Tensor, teacher_logits: torch.Tensor, *, steps: int, lr: float,
            temperature: float, seed: int, after_step=None) -> nn.Module:
    """Knowledge distillation (Hinton et al. 2015): ``steps`` Adam steps on batches of ``images`` matching the
    student's softened outputs to the teacher's (KL divergence at ``temperature``), the learning rate decayed
    to 0 on a cosine; ``after_step`` (e.g. re-applying a pruning mask) runs after each step. Trains in place and
    returns the student in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
    targets = F.softmax(teacher_logits / temperature, 1)
    student.train()
    for _ in range(steps):
        rows = torch.randint(0, len(images), (BATCH,), generator=generator)
        log_probs = F.log_softmax(student(images[rows]) / temperature, 1)
        loss = F.kl_div(log_probs, targets[rows], reduction="batchmean") * temperature ** 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if after_step is not None:
            after_step()
    return student.eval()


@dataclass(frozen=True)
class FitData:
    """What a replacement may be fitted on (never evaluation images): ``images`` ``[n, 3, H, W]`` and the
    network's ``teacher_logits`` on them, plus ``detectors``: concept detectors by width (multi-label networks
    whose outputs follow ``concept_names``, trained on clean renders of the world's vocabulary, never on the
    network), for the replacements that read concepts."""

    images: torch.Tensor
    teacher_logits: torch.Tensor
    concept_names: tuple[str, ...] = ()
    detectors: dict[int, nn.Module] = field(default_factory=dict)

    def __post_init__(self):
        if len(self.images) < 1 or len(self.teacher_logits) != len(self.images):
            raise ConfigError(f"FitData needs one row of teacher logits per image (>= 1 image). Got "
                              f"{len(self.images)} images and {len(self.teacher_logits)} rows of logits.")

    @property
    def n_classes(self) -> int:
        return self.teacher_logits.shape[1]

    @property
    def teacher_labels(self) -> torch.Tensor:
        return self.teacher_logits.argmax(1)


class ReplacementModel:
    """A fitted replacement: predictions, its parameter count and (when interpretable) concept scores."""

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Top-1 class of each image."""
        raise NotImplementedError

    def parameter_count(self) -> int:
        """Non-zero parameters, the complexity currency."""
        raise NotImplementedError

    def concept_scores(self, class_index: int) -> dict[str, float] | None:
        """How much each concept drives ``class_index`` (higher: more), or ``None`` for opaque replacements."""
        return None

    def details(self) -> dict[str, Any]:
        """What was built (e.g. widths, leaves), recorded with the scores."""
        return {}


class NetworkReplacement(ReplacementModel):
    """A network (the original, a pruned copy, a student) as a replacement."""

    def __init__(self, network: nn.Module, **details: Any):
        self.network, self._details = network.eval(), details

    def predict(self, images):
        return network_predictions(self.network, images)

    def parameter_count(self):
        return count_nonzero_parameters(self.network)

    def details(self):
        return dict(self._details)


class ConstantPredictor(ReplacementModel):
    """Always the same class: one parameter. The floor every budget can afford."""

    def __init__(self, class_index: int):
        self.class_index = int(class_index)

    def predict(self, images):
        return torch.full((len(images),), self.class_index, dtype=torch.long)

    def parameter_count(self):
        return 1

    def details(self):
        return {"class": self.class_index}

    @classmethod
    def most_frequent(cls, data: FitData) -> "ConstantPredictor":
        """The network's most frequent prediction on the fit images."""
        return cls(int(torch.bincount(data.teacher_labels, minlength=data.n_classes).argmax()))


class ReplacementMethod(Method):
    """A replacement method (see the module docstring). Subclasses implement :meth:`_replace`."""

    family = "replacement"

    def replace(self, model: nn.Module, data: FitData, budget: int, seed: int = 0) -> ReplacementModel:
        """A replacement of ``model`` fitted on ``data`` with at most ``budget`` non-zero parameters."""
        self.validate()
        budget = require("budget", budget, Interval(int, 1, None))
        seed = require("seed", seed, Interval(int, 0, None))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            replacement = self._replace(model.eval(), data, budget, seed)
        used = replacement.parameter_count()
        if used > budget:
            raise MethodError(f"{type(self).__name__} built a replacement with {used} non-zero parameters, over "
                              f"its budget of {budget}.")
        return replacement

    def _replace(self, model: nn.Module, data: FitData, budget: int, seed: int) -> ReplacementModel:
        raise NotImplementedError
