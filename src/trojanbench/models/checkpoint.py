"""Safetensors checkpoints with a JSON card beside them.

trojanbench never unpickles user files: pickle-based formats (``torch.save`` output) are refused with
instructions to convert them, and every safetensors file is validated before it is read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from trojanbench.errors import CheckpointError, ConfigError, UnsafeCheckpointError
from trojanbench.models.architectures import build_model

__all__ = [
    "file_sha256",
    "load_checkpoint",
    "load_state_dict_file",
    "load_weights",
    "read_card",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"})
_MAX_LISTED = 5


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _card_path(path: Path) -> Path:
    return path.with_suffix(".json")


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then move it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; checkpoints are shared data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    model: nn.Module, path: str | Path, card: dict, *, architecture: str, arch_kwargs: dict
) -> Path:
    """Write ``model``'s weights to ``path`` (``.safetensors``) and its card to ``path.with_suffix('.json')``.

    Floating-point tensors are stored as contiguous float32; the card gains ``architecture``,
    ``arch_kwargs``, ``weights_file``, ``sha256`` and ``n_parameters``. Both files are written atomically.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"Checkpoint path {str(path)!r} must end with '.safetensors'.")
    try:
        kwargs_json = json.dumps(arch_kwargs, sort_keys=True)
        json.dumps(card)
    except TypeError as exc:
        raise ConfigError(f"card and arch_kwargs must be JSON-serialisable: {exc}.") from None
    tensors = {
        key: (value.detach().float() if value.is_floating_point() else value.detach())
        .contiguous()
        .clone()
        for key, value in model.state_dict().items()
    }
    metadata = {"architecture": architecture, "arch_kwargs": kwargs_json}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    full_card = {
        **card,
        "architecture": architecture,
        "arch_kwargs": arch_kwargs,
        "weights_file": path.name,
        "sha256": file_sha256(path),
        "n_parameters": sum(p.numel() for p in model.parameters()),
    }
    text = json.dumps(full_card, indent=2, sort_keys=True) + "\n"
    atomic_write(_card_path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    logger.info("Saved checkpoint %s (sha256 %s)", path, full_card["sha256"][:12])
    return path


def read_card(path: str | Path) -> dict:
    """Read the JSON card beside the weights file ``path``."""
    card_path = _card_path(Path(path))
    if not card_path.is_file():
        raise CheckpointError(
            f"No card for {str(path)!r}: expected {str(card_path)!r}. "
            "Write one with save_checkpoint(), or pass architecture= to load_checkpoint()."
        )
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"Card {str(card_path)!r} is not valid JSON ({exc}).") from None
    if not isinstance(card, dict):
        raise CheckpointError(f"Card {str(card_path)!r} must hold a JSON object, got {type(card).__name__}.")
    return card


def _convert_hint(path: Path) -> str:
    src, dst = path.name, path.with_suffix(".safetensors").name
    if src == dst:
        dst = f"{path.stem}.converted.safetensors"
    return (
        "Convert it once, in an environment where you trust the file, with: "
        'python -c "import torch; from safetensors.torch import save_file; '
        f"save_file(torch.load('{src}', weights_only=True), '{dst}')\""
    )


def _corrupted(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"Checkpoint {str(path)!r} is truncated or corrupted ({why}). "
        "Re-download or re-save it with save_checkpoint()."
    )


def _read_header(path: Path) -> dict:
    """Validate the file as safetensors and return its JSON header; refuse pickles."""
    if not path.exists():
        raise CheckpointError(f"No checkpoint file at {str(path)!r}. Check the path.")
    if path.is_dir():
        raise CheckpointError(
            f"{str(path)!r} is a directory; pass the path of the '.safetensors' file inside it."
        )
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
        looks_safe = len(head) == 9 and head[8:9] == b"{"
        if not looks_safe:
            is_pickle = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
            if is_pickle or head.startswith(b"PK\x03\x04") or path.suffix.lower() in PICKLE_SUFFIXES:
                raise UnsafeCheckpointError(
                    f"{str(path)!r} is a pickle-based checkpoint (torch.save format). trojanbench never "
                    "unpickles user files, since unpickling can run arbitrary code. " + _convert_hint(path)
                )
            raise _corrupted(path, f"not a safetensors file: {size} bytes, no valid header")
        (n,) = struct.unpack("<Q", head[:8])
        if 8 + n > size:
            raise _corrupted(path, f"header claims {n} bytes but the file has only {size - 8} after it")
        f.seek(8)
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _corrupted(path, f"unreadable header: {exc}") from None
    if not isinstance(header, dict):
        raise _corrupted(path, "header is not a JSON object")
    return header


def _load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Validate and read a safetensors file: (CPU tensors, string metadata)."""
    metadata = _read_header(path).get("__metadata__")
    try:
        tensors = load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise _corrupted(path, str(exc)) from None
    return tensors, metadata if isinstance(metadata, dict) else {}


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Validate and read a safetensors file into a state dict (CPU tensors)."""
    return _load(Path(path))[0]


def _listed(keys: list[str]) -> str:
    more = f" (and {len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
    return ", ".join(keys[:_MAX_LISTED]) + more


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], *, source: str) -> nn.Module:
    """Copy ``state_dict`` into ``model`` strictly; any key or shape mismatch raises CheckpointError."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{k} (file {tuple(state_dict[k].shape)}, model {tuple(expected[k].shape)})"
        for k in set(expected) & set(state_dict)
        if state_dict[k].shape != expected[k].shape
    )
    problems = [
        f"{label}: {_listed(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched))
        if keys
    ]
    if problems:
        raise CheckpointError(
            f"Weights in {source!r} do not fit {type(model).__name__}: {'; '.join(problems)}. "
            "Check the architecture and its arguments (e.g. num_classes, width) match those used to save it."
        )
    model.load_state_dict(state_dict, strict=True)
    return model


def load_checkpoint(
    path: str | Path, *, architecture: str | None = None, arch_kwargs: dict | None = None
) -> tuple[nn.Module, dict]:
    """Load a checkpoint into a fresh model in eval mode; return ``(model, card)``.

    The architecture comes from the arguments, else the card, else the safetensors metadata. The
    returned card always holds the file's ``sha256``; a card whose recorded hash differs is refused.
    """
    path = Path(path)
    state_dict, metadata = _load(path)
    sha = file_sha256(path)
    card = read_card(path) if _card_path(path).is_file() else {}
    if card.get("sha256") not in (None, sha):
        raise CheckpointError(
            f"The weights do not match their card: {str(path)!r} has sha256 {sha[:12]}..., its card "
            f"{str(_card_path(path))!r} records {str(card['sha256'])[:12]}.... "
            "One of the two was modified or replaced; re-save the checkpoint with save_checkpoint()."
        )
    architecture = architecture or card.get("architecture") or metadata.get("architecture")
    if not architecture:
        raise CheckpointError(
            f"{str(path)!r} is a safetensors file but not a trojanbench model: it records no architecture (no card "
            f"{_card_path(path).name!r} beside it, no metadata). Say which network it holds: --architecture "
            "compact_resnet, torchvision:NAME or package.module:factory on the command line (architecture= in Python)."
        )
    if arch_kwargs is None:
        arch_kwargs = card.get("arch_kwargs")
    if arch_kwargs is None:
        try:
            arch_kwargs = json.loads(metadata.get("arch_kwargs", "{}"))
        except json.JSONDecodeError as exc:
            raise _corrupted(path, f"metadata 'arch_kwargs' is not JSON: {exc}") from None
    if not isinstance(arch_kwargs, dict):
        raise CheckpointError(f"arch_kwargs for {str(path)!r} must be a dict, got {arch_kwargs!r}.")
    model = load_weights(build_model(architecture, **arch_kwargs), state_dict, source=str(path))
    card = {
        **card,
        "architecture": architecture,
        "arch_kwargs": arch_kwargs,
        "weights_file": path.name,
        "sha256": sha,
    }
    return model.eval(), card
