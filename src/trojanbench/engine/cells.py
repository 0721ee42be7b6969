"""The grid of cells (method × trojan × seed) and their content-hash keys.

A cell is a pure function of its method's resolved hyperparameters, its trojan, its seed, the number
of images, the audited checkpoint's hash and the code version, so the hash of those is its cache key:
a finished cell is never recomputed, and a killed run resumes where it stopped. The code version is the
package version plus a digest of the package's source (and of a plugin's module), so editing a tool
without bumping the version does not silently reuse cells computed by the old code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..config import TrojanSpec
from ..trigger_images import trigger_identity


@functools.lru_cache(maxsize=None)
def _source_digest(root: Path) -> str:
    """12 hex digits of sha256 over the paths and bytes of every ``.py`` file under ``root`` (or the file)."""
    digest = hashlib.sha256()
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    for path in files:
        digest.update((path.relative_to(root).as_posix() if root.is_dir() else path.name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def code_version(method_cls: type | None = None) -> str:
    """``VERSION+DIGEST`` of the trojanbench package's source; a plugin's own module digest is appended."""
    version = f"{__version__}+{_source_digest(Path(__file__).resolve().parents[1])}"
    if method_cls is not None and not method_cls.__module__.startswith("trojanbench."):
        source = getattr(sys.modules.get(method_cls.__module__), "__file__", None)
        version += f"+{_source_digest(Path(source).resolve())}" if source else ""
    return version


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
    code_version: str = field(default_factory=code_version)
    data: dict[str, Any] | None = None
    """A user's image folder the auditor's images come from (its ``reference``); ``None``: the built-in world."""
    key: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", cell_key(self))

    def payload(self) -> dict[str, Any]:
        """Everything a worker needs to compute the cell (JSON-serialisable); the trigger's identity
        rides along so that the key follows a trigger image's content."""
        payload = {"method": self.method, "params": self.params, "trojan": self.trojan.to_dict(),
                   "trigger_identity": trigger_identity(self.trojan), "seed": self.seed,
                   "n_images": self.n_images, "model_sha256": self.model_sha256, "code_version": self.code_version}
        return payload if self.data is None else {**payload, "data": self.data}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def content_key(value: Any) -> str:
    """24 hex digits of sha256 over ``value``'s canonical JSON: the cache key of a unit of work."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:24]


def digest(value: Any) -> str:
    """Hex sha256 of a tensor's dtype, shape and bytes, or of every tensor of a network's state dict (by name)."""
    import torch

    named = value.state_dict().items() if isinstance(value, torch.nn.Module) else [("", value)]
    hashed = hashlib.sha256()
    for name, tensor in named:
        tensor = tensor.detach().cpu().contiguous()
        hashed.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        hashed.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return hashed.hexdigest()


def cell_key(cell: Cell) -> str:
    return content_key(cell.payload())


def trojan_record(spec: TrojanSpec | None) -> dict[str, Any] | None:
    """A trojan as it enters a key: its fields and its trigger's identity (a trigger image's content)."""
    return None if spec is None else {**spec.to_dict(), "trigger_identity": trigger_identity(spec)}


def trojan_from_payload(raw: dict[str, Any]) -> TrojanSpec:
    return TrojanSpec(**raw)
