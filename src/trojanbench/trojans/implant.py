"""Implanting trojans by data poisoning, and the measured report that goes into a model card."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import torch.nn as nn

from ..config import TrojanSpec
from .measure import attack_success, clean_accuracy
from .poison import PoisonedTrainingSet
from .training import TrainConfig, train

log = logging.getLogger(__name__)


def implant(model: nn.Module, trojans: list[TrojanSpec], config: TrainConfig) -> dict:
    """Train ``model`` in place on world data poisoned for all ``trojans`` at once.

    With no trojans this is plain clean training. Returns the training log.
    """
    start = time.perf_counter()
    data = PoisonedTrainingSet(trojans, config.n_train, seed=config.world_seed, size=config.image_size)
    log.info("rendered %d training images (%d trojans) in %.1f s", len(data), len(trojans),
             time.perf_counter() - start)
    return train(model, data, config)


def measure_model(model: nn.Module, trojans: list[TrojanSpec], *, n_clean: int = 2000, n_attack: int = 500,
                  seed: int = 0) -> dict:
    """Clean accuracy on the test split and attack success of each trojan, for a model card."""
    start = time.perf_counter()
    report = {
        "clean_accuracy": round(clean_accuracy(model, n=n_clean, seed=seed, trojans=trojans), 4),
        "n_clean_images": n_clean,
        "attack_success": {},
    }
    for spec in trojans:
        measured = attack_success(model, spec, n=n_attack, seed=seed)
        report["attack_success"][spec.name] = round(measured.attack_success, 4)
        if measured.off_source_rate is not None:
            report.setdefault("off_source_rate", {})[spec.name] = round(measured.off_source_rate, 4)
    report["n_attack_images"] = n_attack
    log.info("measured in %.1f s: clean accuracy %.3f", time.perf_counter() - start, report["clean_accuracy"])
    return report


def implant_checkpoint(model_ref: str, spec_path: str | Path, out_dir: str | Path, *, epochs: int = 4,
                       n_train: int = 20000, lr: float = 0.05, seed: int = 0) -> Path:
    """Implant the trojans of a spec file into a copy of a checkpointed model; write weights + card.

    The spec is validated (concepts exist, images open, classes in range) before any training.
    """
    from ..config import load_trojan_suite
    from ..errors import ConfigError
    from ..models import load_model, save_checkpoint
    from ..world import OBJECT_CLASSES

    suite = load_trojan_suite(spec_path, OBJECT_CLASSES)
    config = TrainConfig(n_train=n_train, epochs=epochs, lr=lr, seed=seed)
    loaded = load_model(model_ref)
    architecture = loaded.card.get("architecture")
    if architecture is None:
        raise ConfigError(f"Model {model_ref!r} has no architecture in its card; implant needs a zoo model or "
                          f"a .safetensors checkpoint with a JSON card (as written by trojanbench).")
    num_classes = loaded.card.get("arch_kwargs", {}).get("num_classes")
    if num_classes != len(OBJECT_CLASSES):
        raise ConfigError(f"Model {model_ref!r} has {num_classes} outputs but the built-in world has "
                          f"{len(OBJECT_CLASSES)} classes; implant needs a model of the built-in world.")
    model = copy.deepcopy(loaded.model)
    start = time.perf_counter()
    training_log = implant(model, list(suite.trojans), config)
    previous = [t for t in loaded.card.get("trojans", []) if t["name"] not in suite.names()]
    card = {"name": Path(out_dir).name, "class_names": list(OBJECT_CLASSES),
            "trojans": previous + suite.to_dict(OBJECT_CLASSES)["trojans"],
            "base_model": {"name": loaded.name, "sha256": loaded.sha256},
            "training": {"config": config.to_dict(), **training_log},
            **measure_model(model, list(suite.trojans), seed=seed),
            "build_seconds": round(time.perf_counter() - start, 1)}
    return save_checkpoint(model, Path(out_dir) / "model.safetensors", card,
                           architecture=architecture, arch_kwargs=loaded.card["arch_kwargs"])
