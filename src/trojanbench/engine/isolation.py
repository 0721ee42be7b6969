"""Cells isolated from each other: what a method is handed must be the same after its cell as before.

Workers keep the audited model and the auditor's data between cells (building them is costly), so a method that
modifies them in place (a plugin that normalises the clean images it was given, flips the model into training
mode or leaves a hook on it) would silently change every later cell of other methods. :func:`fingerprint` digests
everything reachable from the shared object; a cell after which the digest differs fails with the names of what
changed, and the worker builds a fresh copy for the next cell.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .cells import digest


def _module_fingerprint(module: Any) -> dict[str, str]:
    parts = {f"state.{name}": digest(value) for name, value in module.state_dict(keep_vars=True).items()}
    for name, sub in module.named_modules():
        hooks = [len(getattr(sub, attr, {})) for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                                                            "_backward_pre_hooks")]
        parts[f"module.{name or 'model'}"] = f"training={sub.training} hooks={hooks}"
    parts["requires_grad"] = "".join("1" if p.requires_grad else "0" for p in module.parameters())
    parts["grads"] = "".join("1" if p.grad is not None else "0" for p in module.parameters())
    return parts


def fingerprint(shared: Any) -> dict[str, str]:
    """``{part: digest}`` of a dataclass of shared inputs (e.g. a :class:`~trojanbench.methods.Target`): every
    tensor's bytes, every module's weights, buffers, train mode, hooks and gradient flags, and the other fields'
    values. Dicts of modules (named layers) are views of the model and are covered by it."""
    import torch

    parts: dict[str, str] = {}
    for field in dataclasses.fields(shared):
        value = getattr(shared, field.name)
        if isinstance(value, torch.nn.Module):
            parts.update({f"{field.name}.{k}": v for k, v in _module_fingerprint(value).items()})
        elif isinstance(value, torch.Tensor):
            parts[field.name] = digest(value)
        elif isinstance(value, dict) and all(isinstance(v, torch.nn.Module) for v in value.values()):
            parts[field.name] = repr(sorted(value))
        else:
            parts[field.name] = repr(value)
    return parts


def changed_parts(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The top-level fields whose digests differ between two fingerprints (``model``, ``clean_images``, ...)."""
    keys = set(before) | set(after)
    return sorted({key.split(".", 1)[0] for key in keys if before.get(key) != after.get(key)})
