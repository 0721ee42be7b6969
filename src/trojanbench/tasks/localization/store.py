"""The localization task's tables: ``localization_sets`` (each fixed set of held-out triggered images: trojan,
target, seed, size, a sha256 of its pixels and masks, and the PNG strips of its images and patch masks),
``localization_cells`` (one row per method, trojan and seed, ``ok`` or ``failed`` with the reason) and
``localization_scores`` (one row per cell, metric and image; ``NULL`` where a metric is undefined for an image)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...engine.store import Store

@dataclass(frozen=True)
class LocalizationCellRow:
    """One localization cell: ``method`` explaining ``trojan``'s target class on the set ``set_key``."""

    key: str
    set_key: str
    method: str
    role: str
    params: dict
    trojan: str
    seed: int
    n_images: int
    status: str
    reason: str | None
    seconds: float


class LocalizationStore(Store):
    """A results folder's localization tables."""

    tables = """
CREATE TABLE IF NOT EXISTS localization_sets (
    key TEXT PRIMARY KEY, trojan TEXT NOT NULL, target INTEGER NOT NULL, seed INTEGER NOT NULL,
    n_images INTEGER NOT NULL, sha256 TEXT NOT NULL, image_file TEXT NOT NULL, mask_file TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS localization_cells (
    key TEXT PRIMARY KEY, run_id INTEGER NOT NULL, set_key TEXT NOT NULL, method TEXT NOT NULL, role TEXT NOT NULL,
    params TEXT NOT NULL, trojan TEXT NOT NULL, seed INTEGER NOT NULL, n_images INTEGER NOT NULL,
    status TEXT NOT NULL, reason TEXT, seconds REAL NOT NULL, finished REAL NOT NULL);
CREATE TABLE IF NOT EXISTS localization_scores (
    key TEXT NOT NULL, metric TEXT NOT NULL, image INTEGER NOT NULL, value REAL,
    PRIMARY KEY (key, metric, image));
"""

    def record_localization_set(self, key: str, trojan: str, target: int, seed: int, n_images: int, sha256: str,
                                image_file: str, mask_file: str) -> None:
        """Record a fixed set of held-out triggered images (its PNG strips already written)."""
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO localization_sets VALUES (?,?,?,?,?,?,?,?)",
                       (key, trojan, target, seed, n_images, sha256, image_file, mask_file))

    def localization_sets(self) -> dict[str, dict[str, Any]]:
        """``{set key: {trojan, target, seed, n_images, sha256, image_file, mask_file}}``."""
        rows = self.db.execute("SELECT key, trojan, target, seed, n_images, sha256, image_file, mask_file "
                               "FROM localization_sets ORDER BY trojan, seed")
        names = ("trojan", "target", "seed", "n_images", "sha256", "image_file", "mask_file")
        return {r[0]: dict(zip(names, r[1:])) for r in rows}

    def record_localization_cell(self, run_id: int, row: LocalizationCellRow, scores: dict[str, np.ndarray]) -> None:
        """Commit a finished localization cell and its per-image scores (``{metric: [n]}``) in one transaction."""
        values = [(row.key, metric, index, None if not np.isfinite(value) else float(value))
                  for metric, per_image in scores.items() for index, value in enumerate(np.asarray(per_image))]
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO localization_cells VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (row.key, run_id, row.set_key, row.method, row.role, json.dumps(row.params, sort_keys=True),
                        row.trojan, row.seed, row.n_images, row.status, row.reason, row.seconds, time.time()))
            db.execute("DELETE FROM localization_scores WHERE key = ?", (row.key,))
            db.executemany("INSERT INTO localization_scores VALUES (?,?,?,?)", values)

    def localization_cells(self) -> list[LocalizationCellRow]:
        rows = self.db.execute("SELECT key, set_key, method, role, params, trojan, seed, n_images, status, reason, "
                               "seconds FROM localization_cells ORDER BY method, trojan, seed")
        return [LocalizationCellRow(r[0], r[1], r[2], r[3], json.loads(r[4]), *r[5:]) for r in rows]

    def localization_scores(self) -> dict[str, dict[str, np.ndarray]]:
        """``{cell key: {metric: per-image values [n]}}`` (NaN where a metric is undefined)."""
        out: dict[str, dict[str, list[float]]] = {}
        for key, metric, value in self.db.execute("SELECT key, metric, value FROM localization_scores "
                                                  "ORDER BY key, metric, image"):
            out.setdefault(key, {}).setdefault(metric, []).append(float("nan") if value is None else value)
        return {key: {m: np.array(v, dtype=float) for m, v in metrics.items()} for key, metrics in out.items()}
