"""A consistent copy of a study's database while its server keeps writing: SQLite's online backup."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from ..errors import ConfigError, TrojanbenchError
from .store import SURVEY_FILE

log = logging.getLogger(__name__)


def backup_study(results_dir: str | Path, out: str | Path) -> int:
    """Copy ``RESULTS_DIR/survey.sqlite`` to ``out`` (replaced if it exists, its folder made if missing) with
    :meth:`sqlite3.Connection.backup`, a snapshot of one moment that a running server goes on writing past;
    returns the number of answers copied."""
    source_path, out = Path(results_dir) / SURVEY_FILE, Path(out)
    if not source_path.is_file():
        raise ConfigError(f"No study database at {str(source_path)!r}; serve the folder first "
                          "(trojanbench survey serve RESULTS_DIR).")
    if out.exists() and out.resolve() == source_path.resolve():
        raise ConfigError(f"The backup must go to another file than the study's own ({str(source_path)!r}).")
    out.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"{source_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(out, timeout=30)
    try:
        source.backup(target)
        check = target.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise TrojanbenchError(f"The backup at {str(out)!r} failed SQLite's integrity check: {check}.")
        answers = target.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    finally:
        target.close()
        source.close()
    log.info("backed up %s to %s (%d answers)", source_path, out, answers)
    return answers
