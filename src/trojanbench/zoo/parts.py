"""Loading the zoo's auxiliary networks (the patch generator, the appearance embedder) by architecture."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import torch.nn as nn

from ..errors import CheckpointError
from ..models import ZOO_DIR, load_state_dict_file, load_weights, read_card


def load_part(part: str, architecture: str, factory: Callable[..., nn.Module], path: Path | str | None = None) -> nn.Module:
    """The network ``part`` (default: the zoo's ``<part>.safetensors``), frozen in eval mode, cached per path.

    Callers that train it must work on a deep copy (the cached object is shared)."""
    path = Path(ZOO_DIR / f"{part}.safetensors" if path is None else path).resolve()
    return _load_cached(part, architecture, factory, path)


@functools.lru_cache(maxsize=8)
def _load_cached(part: str, architecture: str, factory: Callable[..., nn.Module], path: Path) -> nn.Module:
    if not path.is_file():
        raise CheckpointError(f"No {part} at {str(path)!r}. Train it with `trojanbench zoo build --only {part}`.")
    card = read_card(path)
    if card.get("architecture") != architecture:
        raise CheckpointError(f"{str(path)!r} holds a {card.get('architecture')!r} model, not a {architecture!r}.")
    model = factory(**card.get("arch_kwargs", {}))
    load_weights(model, load_state_dict_file(path), source=str(path))
    return model.eval().requires_grad_(False)
