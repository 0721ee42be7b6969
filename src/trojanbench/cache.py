"""An on-disk cache of tensors keyed by content, for one-off work that every run would otherwise redo.

:func:`cached` stores a value as one safetensors file named by the content key of everything it depends on:
the producer's name and version (a constant beside the producer's code, bumped whenever its computation
changes), torch's version, and the producer's inputs, where tensors and networks stand in by the digest of
their bytes (:func:`digest`). Entries are written atomically and checked when read (shape and dtype); an
unreadable entry is recomputed and rewritten, and a folder that cannot be written costs one warning, never
a run.

The folder (:func:`cache_dir`) is ``$TROJANBENCH_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/trojanbench``,
else ``~/.cache/trojanbench``. ``TROJANBENCH_CACHE_DIR=off`` turns the cache off: every value is computed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .engine.cells import content_key, digest
from .models.checkpoint import atomic_write

log = logging.getLogger(__name__)

ENV_VAR = "TROJANBENCH_CACHE_DIR"
DISABLED = "off"
"""The value of :data:`ENV_VAR` that turns the cache off."""

_unwritable: set[Path] = set()


def cache_dir() -> Path | None:
    """The cache folder (see the module docstring), or ``None`` when the cache is off."""
    chosen = os.environ.get(ENV_VAR)
    if chosen == DISABLED:
        return None
    if chosen:
        return Path(chosen).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trojanbench"


def cached(name: str, version: int, compute: Callable[[], torch.Tensor], *, shape: tuple[int, ...],
           dtype: torch.dtype = torch.float32, **depends_on: Any) -> torch.Tensor:
    """``compute()``, stored under the content key of ``name``, ``version`` and ``depends_on`` (tensors and
    networks among them by their :func:`digest`, the rest as JSON), and read back from there while it
    holds a tensor of ``shape`` and ``dtype``."""
    folder = cache_dir()
    if folder is None:
        return compute()
    inputs = {key: digest(value) if isinstance(value, (torch.Tensor, torch.nn.Module)) else value
              for key, value in depends_on.items()}
    key = content_key({"name": name, "version": version, "torch": torch.__version__, "inputs": inputs})
    path = folder / f"{name}-{key}.safetensors"
    if path.is_file():
        stored = _read(path, tuple(shape), dtype)
        if stored is not None:
            return stored
    value = compute()
    _write(folder, path, value)
    return value


def _read(path: Path, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor | None:
    """The entry at ``path``, or ``None`` (and a warning) when it cannot be read or holds something else."""
    try:
        value = load_file(path)["value"]
        if tuple(value.shape) != shape or value.dtype != dtype:
            raise ValueError(f"it holds {value.dtype} {tuple(value.shape)}, not {dtype} {shape}")
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, the value can be computed again
        log.warning("Cache entry %s is unreadable (%s); computing it again.", path, exc)
        return None
    return value


def _write(folder: Path, path: Path, value: torch.Tensor) -> None:
    """Store ``value`` at ``path`` atomically; warn once per folder that cannot be written."""
    if folder in _unwritable:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: save_file({"value": value.detach().cpu().contiguous()}, tmp))
    except OSError as exc:
        _unwritable.add(folder)
        log.warning("Cannot write the cache folder %s (%s); going on without caching there. Set %s to a "
                    "writable folder, or to %r to turn the cache off.", folder, exc, ENV_VAR, DISABLED)
