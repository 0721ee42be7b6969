"""The rediscovery task's tables: ``cells`` (one row per finished cell, ``ok`` or ``failed`` with the reason),
``scores`` (one row per cell and judge), ``questions`` (the multiple-choice question of each trojan and seed),
``diagnostics`` (each cell's ground-truth diagnostics, :mod:`.diagnostics`) and ``battery`` (each judge's validity
checks on each question, :mod:`trojanbench.judges.battery`).
A cell's images are one PNG strip, ``images/<cell key>.png``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...engine.store import Store
from .diagnostics import DIAGNOSTICS_VERSION

@dataclass(frozen=True)
class CellRow:
    """One rediscovery cell: ``method``'s images for ``trojan`` under ``seed`` (``image_file``: its PNG strip)."""

    key: str
    method: str
    role: str
    params: dict
    trojan: str
    kind: str
    seed: int
    status: str
    reason: str | None
    seconds: float
    image_file: str | None


class RediscoveryStore(Store):
    """A results folder's rediscovery tables."""

    tables = """
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY, run_id INTEGER NOT NULL, method TEXT NOT NULL, role TEXT NOT NULL,
    params TEXT NOT NULL, trojan TEXT NOT NULL, kind TEXT NOT NULL, seed INTEGER NOT NULL,
    status TEXT NOT NULL, reason TEXT, seconds REAL NOT NULL, image_file TEXT, finished REAL NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    key TEXT NOT NULL, judge TEXT NOT NULL, p_true REAL NOT NULL, top1 INTEGER NOT NULL,
    probabilities TEXT NOT NULL, seconds REAL NOT NULL, PRIMARY KEY (key, judge));
CREATE TABLE IF NOT EXISTS questions (
    trojan TEXT NOT NULL, seed INTEGER NOT NULL, question TEXT NOT NULL, PRIMARY KEY (trojan, seed));
CREATE TABLE IF NOT EXISTS evidence (
    key TEXT NOT NULL, judge TEXT NOT NULL, evidence TEXT NOT NULL, PRIMARY KEY (key, judge));
CREATE TABLE IF NOT EXISTS diagnostics (
    key TEXT PRIMARY KEY, version INTEGER NOT NULL, diagnostics TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS battery (
    key TEXT PRIMARY KEY, judge TEXT NOT NULL, trojan TEXT NOT NULL, seed INTEGER NOT NULL, checks TEXT NOT NULL,
    seconds REAL NOT NULL, finished REAL NOT NULL);
"""

    def load_images(self, row: CellRow) -> np.ndarray:
        """The ``[n, H, W, 3]`` uint8 images of a finished cell."""
        return self.load_image_strip(row.image_file)

    def record_cell(self, run_id: int, row: CellRow, scores: list[tuple[str, float, int, list[float], float]]) -> None:
        """Commit a finished cell and its judges' scores in one transaction."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO cells VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (row.key, run_id, row.method, row.role, json.dumps(row.params, sort_keys=True), row.trojan,
                        row.kind, row.seed, row.status, row.reason, row.seconds, row.image_file, time.time()))
            db.executemany("INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?)",
                           [(row.key, judge, p, top1, json.dumps(probs), secs)
                            for judge, p, top1, probs, secs in scores])

    def cells(self) -> list[CellRow]:
        rows = self.db.execute("SELECT key, method, role, params, trojan, kind, seed, status, reason, seconds, "
                               "image_file FROM cells ORDER BY method, trojan, seed")
        return [CellRow(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7], r[8], r[9], r[10]) for r in rows]

    def scores(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT key, judge, p_true, top1, probabilities, seconds FROM scores")
        return [{"key": r[0], "judge": r[1], "p_true": r[2], "top1": bool(r[3]), "probabilities": json.loads(r[4]),
                 "seconds": r[5]} for r in rows]

    def record_question(self, trojan: str, seed: int, question: dict) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO questions VALUES (?,?,?)", (trojan, seed, json.dumps(question)))

    def questions(self) -> dict[tuple[str, int], dict]:
        rows = self.db.execute("SELECT trojan, seed, question FROM questions")
        return {(r[0], r[1]): json.loads(r[2]) for r in rows}

    def record_battery(self, key: str, judge: str, trojan: str, seed: int, checks: list[dict],
                       seconds: float) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO battery VALUES (?,?,?,?,?,?,?)",
                       (key, judge, trojan, seed, json.dumps(checks), seconds, time.time()))

    def battery_keys(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT key FROM battery")}

    def battery(self) -> dict[tuple[str, str, int], list[dict]]:
        """``{(judge, trojan, seed): checks}``, the newest of each."""
        rows = self.db.execute("SELECT judge, trojan, seed, checks FROM battery ORDER BY finished")
        return {(r[0], r[1], r[2]): json.loads(r[3]) for r in rows}

    def record_evidence(self, key: str, judge: str, evidence: dict) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO evidence VALUES (?,?,?)", (key, judge, json.dumps(evidence)))

    def evidence(self) -> dict[tuple[str, str], dict]:
        """``{(cell key, judge): evidence}`` (:class:`~trojanbench.judges.evidence.Evidence` as a dict)."""
        return {(r[0], r[1]): json.loads(r[2]) for r in self.db.execute("SELECT key, judge, evidence FROM evidence")}

    def record_diagnostics(self, key: str, version: int, diagnostics: dict) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO diagnostics VALUES (?,?,?)", (key, version, json.dumps(diagnostics)))

    def diagnostics(self) -> dict[str, dict]:
        """``{cell key: diagnostics}`` (:mod:`.diagnostics`) of the current version."""
        rows = self.db.execute("SELECT key, diagnostics FROM diagnostics WHERE version = ?", (DIAGNOSTICS_VERSION,))
        return {r[0]: json.loads(r[1]) for r in rows}

    def rediscovery_images(self, model_sha256: str) -> dict[tuple[str, str, int], CellRow]:
        """``{(method, trojan, seed): row}`` of finished rediscovery cells with images, from runs on the model
        whose checkpoint hash is ``model_sha256`` (the guidance the removal task reads)."""
        runs = {r["run_id"] for r in self.runs() if r["provenance"].get("model", {}).get("sha256") == model_sha256}
        rows = self.db.execute("SELECT run_id, key, method, role, params, trojan, kind, seed, status, reason, seconds, "
                               "image_file FROM cells WHERE status = 'ok' AND image_file IS NOT NULL ORDER BY finished")
        return {(r[2], r[5], r[7]): CellRow(r[1], r[2], r[3], json.loads(r[4]), *r[5:]) for r in rows if r[0] in runs}
