"""Auditing a model against its planted trojans: clean accuracy and measured attack success.

This is what ``trojanbench run`` measures about the audited model before any tool sees it; the
numbers are recomputed on held-out images, never read back from the model card.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ._version import __version__
from .config import TrojanSuite, parse_suite
from .errors import ConfigError
from .models import LoadedModel, check_outputs, load_model
from .progress import Step
from .trojans import AttackSuccess, attack_success, clean_accuracy
from .trojans.triggers import check_trojans_on_folder
from .world import OBJECT_CLASSES


@dataclass
class AuditResult:
    """Measured facts about one model and its trojans."""

    model: str
    sha256: str
    clean_accuracy: float
    suite: TrojanSuite
    attack_success: dict[str, AttackSuccess]
    card_attack_success: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    class_names: tuple[str, ...] = tuple(OBJECT_CLASSES)
    data: dict | None = None
    """What :meth:`~trojanbench.data.ImageFolderData.describe` says of a user's image folder; ``None``: the world."""

    def rows(self) -> list[dict]:
        rows = []
        names = self.class_names
        for spec in self.suite.trojans:
            measured = self.attack_success[spec.name]
            rows.append({"trojan": spec.name, "kind": spec.kind, "trigger": spec.trigger,
                         "target": names[spec.target],
                         "source": "any" if spec.source is None else names[spec.source],
                         "attack_success": measured.attack_success,
                         "card_attack_success": self.card_attack_success.get(spec.name),
                         "off_source_rate": measured.off_source_rate})
        return rows

    def table(self) -> str:
        """A plain-text table: one line per trojan, then the clean accuracy."""
        lines = [f"{'trojan':<14}{'kind':<9}{'scope':<22}{'target':<12}{'attack success':>15}",
                 "-" * 72]
        for row in self.rows():
            scope = "universal" if row["source"] == "any" else f"from {row['source']}"
            lines.append(f"{row['trojan']:<14}{row['kind']:<9}{scope:<22}{row['target']:<12}"
                         f"{row['attack_success']:>14.1%}")
        lines.append("-" * 72)
        lines.append(f"clean accuracy {self.clean_accuracy:.1%} · model {self.model} (sha256 {self.sha256[:12]})")
        if self.data is not None:
            skipped = f", {self.data['skipped']} undecodable skipped" if self.data["skipped"] else ""
            lines.append(f"data {self.data['root']} ({self.data['classes']} classes, {self.data['images']['test']} "
                         f"test images at {self.data['image_size']} px{skipped})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"model": self.model, "sha256": self.sha256, "clean_accuracy": self.clean_accuracy,
                "trojans": self.rows(), "suite": self.suite.to_dict(self.class_names), "data": self.data,
                "seconds": self.seconds, "trojanbench_version": __version__}

    def save(self, out_dir: str | Path) -> Path:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "audit.json"
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def trojans_of(loaded: LoadedModel, class_names: tuple[str, ...] = tuple(OBJECT_CLASSES)) -> TrojanSuite:
    """The trojans recorded in a model's card (a clean model has none)."""
    raw = loaded.card.get("trojans") or []
    if not raw:
        raise ConfigError(f"Model {loaded.name!r} records no trojans in its card; pass a trojan spec "
                          f"(--trojans SPEC.yaml) to say which triggers to measure.")
    return parse_suite({"trojans": raw}, class_names)


def check_world_classifier(loaded: LoadedModel) -> None:
    """Refuse a model whose outputs are not the built-in world's classes (its scores would mean nothing)."""
    check_outputs(loaded, len(OBJECT_CLASSES), 64, "the built-in world's classes are listed by `trojanbench ls "
                  "classes`: fine-tune the model on the world first, e.g. with `trojanbench implant`")


def audit_model(model: str | LoadedModel = "trojaned", *, suite: TrojanSuite | None = None,
                n_clean: int = 2000, n_attack: int = 500, seed: int = 0, data=None,
                progress: Callable[[int, int, Any], None] | None = None) -> AuditResult:
    """Measure clean accuracy and every trojan's attack success on held-out test images: world scenes, or the
    ``test`` split of a user's image folder (``data``, :class:`~trojanbench.data.ImageFolderData`; a spec's classes
    are then its classes). ``progress(done, total, step)`` is called after each measurement (``step.label`` names
    it)."""
    start = time.perf_counter()
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    if data is None:
        check_world_classifier(loaded)
        class_names = tuple(OBJECT_CLASSES)
    else:
        check_outputs(loaded, data.num_classes, data.image_size, "audit needs one output per class of the folder")
        class_names = tuple(data.class_names)
    suite = suite or trojans_of(loaded, class_names)
    if data is not None:
        check_trojans_on_folder(suite.trojans, data)
    total = len(suite.trojans) + 1
    measured = {}
    for done, spec in enumerate(suite.trojans, start=1):
        measured[spec.name] = attack_success(loaded.model, spec, n=n_attack, seed=seed, data=data)
        if progress is not None:
            progress(done, total, Step(f"attack success of {spec.name}"))
    accuracy = clean_accuracy(loaded.model, n=n_clean, seed=seed, trojans=list(suite.trojans), data=data)
    if progress is not None:
        progress(total, total, Step("clean accuracy"))
    return AuditResult(
        model=loaded.name, sha256=loaded.sha256, clean_accuracy=accuracy,
        suite=suite, attack_success=measured,
        card_attack_success=dict(loaded.card.get("attack_success", {})),
        seconds=round(time.perf_counter() - start, 1), class_names=class_names,
        data=None if data is None else data.describe())
