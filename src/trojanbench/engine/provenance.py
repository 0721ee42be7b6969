"""What a run records about where its numbers come from: versions, git commit, the audited model, the judges."""

from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from .._version import __version__


def _git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(model_ref: str, model_sha256: str, model_card: dict | None, judges: dict | None = None,
               data=None) -> dict:
    """Versions, git commit, the audited model (reference, hash and the attack success and clean accuracy its card
    claims), ``judges`` (``{name: what identifies it}``), the run's torch threads per worker and, for a run on a
    user's image folder, ``data`` (its :meth:`~trojanbench.data.ImageFolderData.provenance`)."""
    card = model_card or {}
    origin = {"trojanbench": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "numpy": np.__version__, "platform": platform.platform(), "git": _git_hash(),
            "model": {"ref": model_ref, "sha256": model_sha256,
                      **{k: card[k] for k in ("attack_success", "clean_accuracy") if k in card}},
            "judges": judges or {}, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return origin if data is None else {**origin, "data": data.provenance()}
