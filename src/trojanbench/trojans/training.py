"""The one training loop: SGD with Nesterov momentum and a one-cycle schedule, on (poisoned) world data.

Used to train clean models from scratch and to implant trojans by poisoned fine-tuning, as
Casper et al. (2023) implanted theirs into a pretrained ResNet50.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..progress import Step

if TYPE_CHECKING:  # annotations only
    from ..progress import Progress

log = logging.getLogger(__name__)


class TrainingData(Protocol):
    """What :func:`train` needs: a length, a per-epoch plan, and the epoch's batches built from the plan, one per
    chunk of indices, in order (a streamed set loads them ahead with workers)."""

    def __len__(self) -> int: ...

    def plan_epoch(self, rng: np.random.Generator) -> Any: ...

    def batches(self, chunks: list[np.ndarray], plan: Any,
                rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


class InMemoryTrainingData:
    """Base of the training sets held in memory: the epoch's batches are built one at a time by :meth:`batch`."""

    def batch(self, indices: np.ndarray, plan: Any, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def batches(self, chunks, plan, rng):
        for indices in chunks:
            yield self.batch(indices, plan, rng)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run (recorded in the model card)."""

    n_train: int = 30000
    epochs: int = 12
    batch_size: int = 128
    lr: float = 0.2
    weight_decay: float = 5e-4
    seed: int = 0
    world_seed: int = 0
    image_size: int = 64

    def __post_init__(self):
        for name in ("n_train", "epochs", "batch_size", "image_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"The '{name}' parameter of TrainConfig must be an int in [1, inf). "
                                  f"Got {value!r} instead.")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"The '{name}' parameter of TrainConfig must be a float >= 0. Got {value!r}.")

    def to_dict(self) -> dict:
        return asdict(self)


NewDisplay = Callable[[], "Progress"]
"""Makes a fresh progress display for one training run (e.g. :func:`trojanbench.progress.make_progress`)."""
PROGRESS_UPDATES = 40
"""A training run updates its display this many times (each a line where stderr is not a terminal)."""


class TrainingProgress:
    """Reports a training run of ``total`` steps to a fresh display from ``new_display`` (``None``: silent), on its
    first and last step and :data:`PROGRESS_UPDATES` times between; the display adds elapsed time and ETA."""

    def __init__(self, new_display: NewDisplay | None, name: str, total: int):
        self.display = new_display() if new_display is not None else None
        self.name, self.total, self.done = name, total, 0
        self.every = max(1, total // PROGRESS_UPDATES)

    def step(self, status: str) -> None:
        """One step done; ``status`` says where the run is (e.g. ``"epoch 2/4 · loss 0.41"``)."""
        self.done += 1
        if self.display is not None and (self.done == 1 or self.done % self.every == 0 or self.done == self.total):
            self.display(self.done, self.total, Step(f"{self.name} · {status}"))

    def close(self) -> None:
        if self.display is not None:
            self.display.close()


def train(model: nn.Module, data: TrainingData, config: TrainConfig,
          loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy, *,
          perturb: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          progress: NewDisplay | None = None, name: str = "training") -> dict:
    """Train ``model`` in place on ``data``; return a small log (loss per epoch, seconds). ``perturb(model, images,
    labels)``, if given, replaces each batch's images before the step (adversarial training: Madry et al. 2018);
    ``progress`` makes the display that shows the run (called ``name``) step by step."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng([config.seed, 104729])
    steps_per_epoch = -(-len(data) // config.batch_size)
    decay, no_decay = [], []
    for parameter in model.parameters():
        (decay if parameter.ndim > 1 else no_decay).append(parameter)
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": config.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=config.lr, momentum=0.9, nesterov=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, pct_start=0.2,
                                                   total_steps=config.epochs * steps_per_epoch)
    history, start = [], time.perf_counter()
    shown = TrainingProgress(progress, name, config.epochs * steps_per_epoch)
    model.train()
    for epoch in range(config.epochs):
        plan = data.plan_epoch(rng)
        order = rng.permutation(len(data))
        chunks = [order[step * config.batch_size:(step + 1) * config.batch_size] for step in range(steps_per_epoch)]
        total, seen = 0.0, 0
        for images, labels in data.batches(chunks, plan, rng):
            if perturb is not None:
                images = perturb(model, images, labels)
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(labels)
            seen += len(labels)
            shown.step(f"epoch {epoch + 1}/{config.epochs} · loss {total / seen:.3f}")
        history.append(round(total / seen, 4))
        log.info("epoch %d/%d  loss %.4f  (%.0f s)", epoch + 1, config.epochs, history[-1],
                 time.perf_counter() - start)
    shown.close()
    model.eval()
    return {"loss_per_epoch": history, "seconds": round(time.perf_counter() - start, 1)}
