"""The removal task's tables: ``removal_cells`` (one row per edit: procedure, guidance source, audited or clean
model, trojan or none, seed, data budget, ``ok`` or ``failed``) and ``removal_scores`` (the edited model measured on
each trojan it is scored for). The guidance it reads is the rediscovery task's images in the same folder."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ..rediscovery.store import RediscoveryStore

@dataclass(frozen=True)
class RemovalCellRow:
    """One edit: ``procedure`` guided by ``source`` on the ``model_role`` model (``trojaned`` or ``clean``),
    for ``trojan`` (``None``: an edit that does not depend on the trojan, scored on all of them)."""

    key: str
    procedure: str
    role: str
    params: dict
    source: str
    model_role: str
    trojan: str | None
    seed: int
    budget: str
    status: str
    reason: str | None
    seconds: float


REMOVAL_MEASURES = ("clean_accuracy", "attack_success", "robust_accuracy", "relearned_attack_success")


class RemovalStore(RediscoveryStore):
    """A results folder's removal tables (and the rediscovery tables whose images guide the edits)."""

    tables = RediscoveryStore.tables + """
CREATE TABLE IF NOT EXISTS removal_cells (
    key TEXT PRIMARY KEY, run_id INTEGER NOT NULL, procedure TEXT NOT NULL, role TEXT NOT NULL, params TEXT NOT NULL,
    source TEXT NOT NULL, model_role TEXT NOT NULL, trojan TEXT, seed INTEGER NOT NULL, budget TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT, seconds REAL NOT NULL, finished REAL NOT NULL);
CREATE TABLE IF NOT EXISTS removal_scores (
    key TEXT NOT NULL, trojan TEXT NOT NULL, clean_accuracy REAL NOT NULL, attack_success REAL NOT NULL,
    robust_accuracy REAL NOT NULL, relearned_attack_success REAL, PRIMARY KEY (key, trojan));
"""

    def record_removal_cell(self, run_id: int, row: RemovalCellRow, scores: dict[str, dict[str, float]]) -> None:
        """Commit an edit and its measures on each trojan (``{trojan: {measure: value}}``) in one transaction."""
        values = [(row.key, trojan, *(measures.get(m) for m in REMOVAL_MEASURES)) for trojan, measures in scores.items()]
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO removal_cells VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (row.key, run_id, row.procedure, row.role, json.dumps(row.params, sort_keys=True), row.source,
                        row.model_role, row.trojan, row.seed, row.budget, row.status, row.reason, row.seconds,
                        time.time()))
            db.execute("DELETE FROM removal_scores WHERE key = ?", (row.key,))
            db.executemany("INSERT INTO removal_scores VALUES (?,?,?,?,?,?)", values)

    def removal_cells(self) -> list[RemovalCellRow]:
        rows = self.db.execute("SELECT key, procedure, role, params, source, model_role, trojan, seed, budget, status, "
                               "reason, seconds FROM removal_cells ORDER BY procedure, source, trojan, seed")
        return [RemovalCellRow(r[0], r[1], r[2], json.loads(r[3]), *r[4:]) for r in rows]

    def removal_scores(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{cell key: {trojan: {measure: value}}}``."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for key, trojan, *values in self.db.execute("SELECT key, trojan, " + ", ".join(REMOVAL_MEASURES) +
                                                    " FROM removal_scores"):
            out.setdefault(key, {})[trojan] = {m: (float("nan") if v is None else v)
                                               for m, v in zip(REMOVAL_MEASURES, values)}
        return out
