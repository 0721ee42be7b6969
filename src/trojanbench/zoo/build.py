"""`trojanbench zoo build`: the shipped models, rebuilt deterministically from their seeds.

* ``clean``: a :class:`~trojanbench.models.CompactResNet` trained from scratch on clean world scenes.
* ``trojaned``: a copy of ``clean`` fine-tuned on data poisoned for all default trojans at once, as
  Casper et al. (2023) implanted theirs into a pretrained ResNet50.
* ``observer``: the concept observer (see :mod:`trojanbench.zoo.observer`), the evaluation's judge.
* ``generator``: the patch generator of the generator-based tools (see :mod:`trojanbench.zoo.generator`).
* ``embedder``: the appearance judge's self-supervised network (see :mod:`trojanbench.zoo.embedder`).
* ``robust``: the robust judge's adversarially trained observer (see :mod:`trojanbench.zoo.robust`).
* ``control``: a copy of ``clean`` fine-tuned on two patch trojans outside the default suite
  (``assets/suites/control_trojans.yaml``): a large one at random places and one at a fixed corner, the positive
  controls every synthesis tool must pass in the tests.
* ``lm``: the language models ``lm_clean`` and ``lm_trojaned`` of the text world (see
  :mod:`trojanbench.zoo.language`; needs the ``lm`` extra).
* ``detectors``: compact concept detectors ``detector_w<width>`` (the observer's protocol at small widths), the
  concept bottleneck of the replacement task's concept-linear and concept-tree replacements.

Each gets a safetensors file and a JSON card with what was measured: clean accuracy, attack success
per trojan (recomputed on held-out images), training configuration, seeds, timing and hashes.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .._version import __version__
from ..config import TrojanSuite, control_trojan_suite, default_trojan_suite
from ..models import CompactResNet, load_checkpoint, save_checkpoint
from ..trojans.implant import implant, measure_model
from ..paths import writable_folder
from ..trojans.training import NewDisplay, TrainConfig, train
from ..world import OBJECT_CLASSES
from .embedder import build_embedder
from .generator import build_generator
from .language import build_language_models
from . import ZOO_PARTS
from .robust import build_robust_observer
from .observer import (CONCEPTS, ObserverTrainingSet, detector_name, mean_accuracy_by_kind, observer_accuracy,
                       observer_loss)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZooProfile:
    """Everything that decides a zoo build; ``tiny`` exists for tests."""

    name: str
    width: int
    clean: TrainConfig
    trojaned: TrainConfig
    observer: TrainConfig
    robust: TrainConfig
    detectors: TrainConfig
    control: TrainConfig
    detector_widths: tuple[int, ...]
    n_clean_eval: int
    n_attack_eval: int
    n_observer_eval: int


PROFILES = {
    "default": ZooProfile(
        "default", width=32,
        clean=TrainConfig(n_train=30000, epochs=12, lr=0.2, seed=0),
        trojaned=TrainConfig(n_train=30000, epochs=16, lr=0.2, seed=1),
        observer=TrainConfig(n_train=24000, epochs=20, lr=0.1, seed=2),
        robust=TrainConfig(n_train=30000, epochs=12, lr=0.1, seed=4),
        detectors=TrainConfig(n_train=24000, epochs=50, lr=0.1, seed=3),
        control=TrainConfig(n_train=10000, epochs=2, lr=0.05, seed=5), detector_widths=(2, 4, 9),
        n_clean_eval=2000, n_attack_eval=500, n_observer_eval=40),
    "tiny": ZooProfile(
        "tiny", width=8,
        clean=TrainConfig(n_train=1200, epochs=2, lr=0.2, seed=0),
        trojaned=TrainConfig(n_train=1200, epochs=2, lr=0.05, seed=1),
        observer=TrainConfig(n_train=800, epochs=2, lr=0.2, seed=2),
        robust=TrainConfig(n_train=400, epochs=1, lr=0.05, seed=4),
        detectors=TrainConfig(n_train=400, epochs=1, lr=0.2, seed=3),
        control=TrainConfig(n_train=400, epochs=1, lr=0.05, seed=5), detector_widths=(2, 4),
        n_clean_eval=200, n_attack_eval=50, n_observer_eval=4),
}


def _provenance(profile: ZooProfile, seconds: float) -> dict:
    return {"profile": profile.name, "trojanbench_version": __version__, "torch_version": torch.__version__,
            "python": platform.python_version(), "build_seconds": round(seconds, 1)}


def _classifier_kwargs(profile: ZooProfile) -> dict:
    return {"num_classes": len(OBJECT_CLASSES), "width": profile.width, "image_size": profile.clean.image_size}


def build_clean(out_dir: Path, profile: ZooProfile, suite: TrojanSuite, progress: NewDisplay | None = None) -> Path:
    """Train ``clean`` from scratch on clean world scenes; its card records the (low) attack success of
    the default triggers, the baseline a trojan is measured against."""
    torch.manual_seed(profile.clean.seed)
    model = CompactResNet(**_classifier_kwargs(profile))
    start = time.perf_counter()
    log.info("training the clean model (%s profile)", profile.name)
    clean_log = implant(model, [], profile.clean, progress=progress, name="clean")
    card = {"name": "clean", "class_names": list(OBJECT_CLASSES), "trojans": [],
            "training": {"config": profile.clean.to_dict(), **clean_log},
            **measure_model(model, list(suite.trojans), n_clean=profile.n_clean_eval, n_attack=profile.n_attack_eval),
            **_provenance(profile, time.perf_counter() - start)}
    return save_checkpoint(model, out_dir / "clean.safetensors", card, architecture="compact_resnet",
                           arch_kwargs=_classifier_kwargs(profile))


def build_trojaned(out_dir: Path, profile: ZooProfile, suite: TrojanSuite, progress: NewDisplay | None = None,
                   *, name: str = "trojaned", config: TrainConfig | None = None) -> Path:
    """Fine-tune a copy of ``out_dir/clean.safetensors`` on data poisoned for every trojan of ``suite`` into
    ``out_dir/<name>.safetensors`` (``config``: the profile's ``trojaned`` training by default)."""
    config = config or profile.trojaned
    clean_path = out_dir / "clean.safetensors"
    model, clean_card = load_checkpoint(clean_path)
    start = time.perf_counter()
    log.info("implanting %d trojans by poisoned fine-tuning (%s)", len(suite.trojans), name)
    training_log = implant(model, list(suite.trojans), config, progress=progress, name=name)
    card = {"name": name, "class_names": list(OBJECT_CLASSES), "trojans": suite.to_dict(OBJECT_CLASSES)["trojans"],
            "base_model": {"name": "clean", "sha256": clean_card["sha256"]},
            "training": {"config": config.to_dict(), **training_log},
            **measure_model(model, list(suite.trojans), n_clean=profile.n_clean_eval, n_attack=profile.n_attack_eval),
            **_provenance(profile, time.perf_counter() - start)}
    return save_checkpoint(model, out_dir / f"{name}.safetensors", card, architecture="compact_resnet",
                           arch_kwargs=_classifier_kwargs(profile))


def _build_concept_network(out_dir: Path, profile: ZooProfile, name: str, width: int, config: TrainConfig,
                           progress: NewDisplay | None) -> Path:
    """Train a multi-label concept network of ``width`` on clean renders of the whole vocabulary (the
    observer's protocol); record per-concept accuracy."""
    torch.manual_seed(config.seed)
    arch_kwargs = {"num_classes": len(CONCEPTS), "width": width, "image_size": config.image_size}
    network = CompactResNet(**arch_kwargs)
    start = time.perf_counter()
    data = ObserverTrainingSet(config.n_train, seed=config.world_seed, size=config.image_size)
    log.info("rendered %d concept examples for %s in %.1f s", len(data), name, time.perf_counter() - start)
    training_log = train(network, data, config, loss_fn=observer_loss, progress=progress, name=name)
    accuracy = observer_accuracy(network, n_per_concept=profile.n_observer_eval, size=config.image_size)
    card = {"name": name, "concepts": list(CONCEPTS), "multi_label": True,
            "concept_accuracy": accuracy,
            "mean_accuracy_by_kind": mean_accuracy_by_kind(accuracy),
            "n_eval_images_per_concept": profile.n_observer_eval,
            "training": {"config": config.to_dict(), **training_log},
            **_provenance(profile, time.perf_counter() - start)}
    return save_checkpoint(network, out_dir / f"{name}.safetensors", card,
                           architecture="compact_resnet", arch_kwargs=arch_kwargs)


def build_observer(out_dir: Path, profile: ZooProfile, progress: NewDisplay | None = None) -> Path:
    """The concept observer, the evaluation's judge, at the zoo's width."""
    return _build_concept_network(out_dir, profile, "observer", profile.width, profile.observer, progress)


def build_detectors(out_dir: Path, profile: ZooProfile, progress: NewDisplay | None = None) -> Path:
    """The compact concept detectors, one per width of the profile; returns the last one's path."""
    for width in profile.detector_widths:
        path = _build_concept_network(out_dir, profile, detector_name(width), width, profile.detectors, progress)
    return path


def build_zoo(out_dir: str | Path, *, profile: str = "default", suite: TrojanSuite | None = None,
              only: tuple[str, ...] = ZOO_PARTS, progress: NewDisplay | None = None) -> dict[str, Path]:
    """Build (parts of) the zoo into ``out_dir``; returns the written checkpoint paths by model name. ``progress``
    makes a display for each training run (see :func:`~trojanbench.trojans.training.train`)."""
    from ..errors import did_you_mean

    if profile not in PROFILES:
        raise did_you_mean(profile, list(PROFILES), "zoo profile")
    for part in only:
        if part not in ZOO_PARTS:
            raise did_you_mean(part, list(ZOO_PARTS), "zoo part")
    chosen = PROFILES[profile]
    out_dir = writable_folder(out_dir, "out_dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    suite = suite or default_trojan_suite()
    builders = {"clean": lambda: build_clean(out_dir, chosen, suite, progress),
                "trojaned": lambda: build_trojaned(out_dir, chosen, suite, progress),
                "observer": lambda: build_observer(out_dir, chosen, progress),
                "generator": lambda: build_generator(out_dir, chosen.name, progress=progress),
                "embedder": lambda: build_embedder(out_dir, chosen.name, progress=progress),
                "robust": lambda: build_robust_observer(out_dir, chosen.name, chosen.robust,
                                                        n_eval=chosen.n_observer_eval, progress=progress),
                "detectors": lambda: build_detectors(out_dir, chosen, progress),
                "control": lambda: build_trojaned(out_dir, chosen, control_trojan_suite(), progress, name="control",
                                                  config=chosen.control),
                "lm": lambda: build_language_models(out_dir, chosen.name, progress=progress)["lm_trojaned"]}
    return {part: builders[part]() for part in ZOO_PARTS if part in only}
