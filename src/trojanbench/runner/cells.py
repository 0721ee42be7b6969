"""The grid of cells (method × trojan × seed) and their content-hash keys.

A cell is a pure function of its method's resolved hyperparameters, its trojan, its seed, the number
of images, the audited checkpoint's hash and the code version, so the hash of those is its cache key:
a finished cell is never recomputed, and a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import __version__
from ..config import TrojanSpec


@dataclass(frozen=True)
class Cell:
    """One unit of work: run ``method`` with ``params`` for ``trojan`` under ``seed``."""

    method: str
    params: dict[str, Any]
    trojan: TrojanSpec
    seed: int
    n_images: int
    model_sha256: str
    role: str = "tool"  # tool | baseline | oracle
    code_version: str = __version__
    key: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", cell_key(self))

    def payload(self) -> dict[str, Any]:
        """Everything a worker needs to compute the cell (JSON-serialisable)."""
        trojan = asdict(self.trojan)
        trojan["patch_scale"] = list(self.trojan.patch_scale)
        return {"method": self.method, "params": self.params, "trojan": trojan, "seed": self.seed,
                "n_images": self.n_images, "model_sha256": self.model_sha256, "code_version": self.code_version}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def cell_key(cell: Cell) -> str:
    return hashlib.sha256(canonical_json(cell.payload()).encode()).hexdigest()[:24]


def trojan_from_payload(raw: dict[str, Any]) -> TrojanSpec:
    return TrojanSpec(**{**raw, "patch_scale": tuple(raw["patch_scale"])})
