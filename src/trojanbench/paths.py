"""Checking where a command will write, before it does any work (imports nothing heavy: no torch)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


def writable_folder(path: str | Path, what: str) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is, or can be created as, a folder this process may write into;
    otherwise a :class:`ConfigError` naming ``what`` (e.g. ``"--out"``), the problem and the fix. Creates nothing.
    """
    path = Path(path).expanduser()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == path else f"is inside {str(existing)!r}, which is a file"
        raise ConfigError(f"{what} {str(path)!r} {where}, not a folder. Give the path of a folder (new or existing).")
    if not os.access(existing, os.W_OK | os.X_OK):
        problem = "is not writable" if existing == path else f"cannot be created: {str(existing)!r} is not writable"
        raise ConfigError(f"{what} {str(path)!r} {problem}. Choose a folder you may write into, or change its "
                          f"permissions.")
    return path
