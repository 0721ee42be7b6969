"""Which torch device a run computes on: ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu``, ``cuda``
or ``cuda:N``; checked before any work, so that a missing GPU is one line, not a crash in the first cell."""

from __future__ import annotations

import torch

from ..errors import ConfigError

def check_device(name: str) -> None:
    """Refuse a device name other than ``auto``, ``cpu``, ``cuda`` and ``cuda:N`` (whether this machine has it is
    not asked here: a Ray cluster's workers may have GPUs the driver lacks)."""
    kind, _, index = str(name).partition(":")
    if kind in ("auto", "cpu") and not index or kind == "cuda" and (not index or index.isdigit()):
        return
    raise ConfigError(f"--device {name!r} is not a device; choose auto (a GPU when there is one), cpu, cuda or "
                      f"cuda:N.")


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device ``name`` means on this machine (a GPU with its index); ``cuda`` without a visible GPU (or
    with fewer than ``N + 1``) is a :class:`~trojanbench.errors.ConfigError` naming the fix."""
    check_device(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {name}: torch sees no CUDA GPU on this machine (torch "
                              f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use --device cpu, "
                              f"or auto to take a GPU only when there is one.")
        if (device.index or 0) >= count:
            raise ConfigError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}.")
        return torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
    return device


def driver_device(executor: str, device: str) -> str:
    """The device on which a run's driver keeps the model it validates and scores with: the run's ``device``,
    except on Ray (``auto`` there, unless the run is on the CPU), whose GPUs may be the workers' only."""
    return device if executor != "ray" or device == "cpu" else "auto"
