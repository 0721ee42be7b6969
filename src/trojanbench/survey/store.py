"""The survey database: ``survey.sqlite`` beside the results store, one file per study.

SQLite in WAL mode with ``synchronous=FULL``: a commit that has returned survives a crash or a SIGKILL of the
server. Tables: ``study`` (the study's configuration and server secret), ``items`` (what can be asked),
``participants`` (a SHA-256 of each participant's token, never the token), ``assignments`` (which item a
participant sees at each position, the option order shown and the lease that reserves its cell) and
``answers`` (append-only, enforced by triggers; unique on participant and item), ``consent_forms`` (the
consent form each participant sent, so that none is sent twice) and ``tombstones`` (append-only: the participants
whose answers were withdrawn on request, when, by whom and why; their rows stay, and every listing of the whole
study leaves them out). A simulation (scripted participants) has its own file, ``survey-simulation.sqlite``,
marked by the study setting ``simulation``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..engine.store import immediate_transaction, open_database

SURVEY_FILE = "survey.sqlite"
SIMULATION_FILE = "survey-simulation.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS study (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    item_id INTEGER PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('cell', 'attention')),
    cell_key TEXT, method TEXT, role TEXT, trojan TEXT, seed INTEGER, question TEXT NOT NULL, shown TEXT);
CREATE TABLE IF NOT EXISTS participants (
    participant_id INTEGER PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, seed INTEGER NOT NULL,
    n_items INTEGER NOT NULL, attention_positions TEXT NOT NULL, completion_code TEXT NOT NULL,
    started REAL NOT NULL, platform TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (
    participant_id INTEGER NOT NULL, position INTEGER NOT NULL, item_id INTEGER NOT NULL,
    permutation TEXT NOT NULL, assigned REAL NOT NULL, lease_expires REAL NOT NULL,
    PRIMARY KEY (participant_id, position), UNIQUE (participant_id, item_id));
CREATE TABLE IF NOT EXISTS answers (
    answer_id INTEGER PRIMARY KEY AUTOINCREMENT, participant_id INTEGER NOT NULL, item_id INTEGER NOT NULL,
    position INTEGER NOT NULL, choice INTEGER NOT NULL, option TEXT NOT NULL, correct INTEGER NOT NULL,
    permutation TEXT NOT NULL, shown REAL NOT NULL, answered REAL NOT NULL, UNIQUE (participant_id, item_id));
CREATE TABLE IF NOT EXISTS consent_forms (nonce TEXT PRIMARY KEY, participant_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones (
    participant_id INTEGER PRIMARY KEY, deleted REAL NOT NULL, operator TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS tombstones_no_update BEFORE UPDATE ON tombstones
    BEGIN SELECT RAISE(ABORT, 'tombstones are append-only'); END;
CREATE TRIGGER IF NOT EXISTS tombstones_no_delete BEFORE DELETE ON tombstones
    BEGIN SELECT RAISE(ABORT, 'tombstones are append-only'); END;
CREATE TRIGGER IF NOT EXISTS answers_no_update BEFORE UPDATE ON answers
    BEGIN SELECT RAISE(ABORT, 'answers are append-only'); END;
CREATE TRIGGER IF NOT EXISTS answers_no_delete BEFORE DELETE ON answers
    BEGIN SELECT RAISE(ABORT, 'answers are append-only'); END;
"""
LIVE = "participant_id NOT IN (SELECT participant_id FROM tombstones)"
"""The SQL condition of a participant whose answers were not withdrawn."""


@dataclass(frozen=True)
class Item:
    """Something a participant can be asked: a tool's images for one cell, or an attention check."""

    item_id: int
    kind: str
    cell_key: str | None
    method: str | None
    role: str | None
    trojan: str | None
    seed: int | None
    question: dict
    shown: str | None

    @property
    def cell(self) -> tuple[str, str] | None:
        """The (tool, trojan) cell an item balances, ``None`` for an attention check."""
        return (self.method, self.trojan) if self.kind == "cell" else None


@dataclass(frozen=True)
class Participant:
    participant_id: int
    seed: int
    n_items: int
    attention_positions: tuple[int, ...]
    completion_code: str
    started: float
    platform: dict


@dataclass(frozen=True)
class Assignment:
    """Item ``item_id`` at ``position``; displayed option ``k`` is the question's option ``permutation[k]``."""

    participant_id: int
    position: int
    item_id: int
    permutation: tuple[int, ...]
    assigned: float
    lease_expires: float


class SurveyStore:
    """One connection shared by the server's threads, serialised by a lock (a study's load is small)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self.db = open_database(self.path, SCHEMA, threads=True)

    @classmethod
    def in_folder(cls, folder: str | Path, simulation: bool = False) -> "SurveyStore":
        return cls(Path(folder) / (SIMULATION_FILE if simulation else SURVEY_FILE))

    def close(self) -> None:
        with self._lock:
            self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction, committed on exit; also holds the thread lock."""
        with self._lock, immediate_transaction(self.db) as db:
            yield db

    def query(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        with self._lock:
            return self.db.execute(sql, parameters).fetchall()

    # study ------------------------------------------------------------------------------------------
    def setting(self, name: str) -> Any:
        rows = self.query("SELECT value FROM study WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else None

    @property
    def simulation(self) -> bool:
        """Whether this study's participants are scripted (see :mod:`trojanbench.survey.simulate`)."""
        return bool(self.setting("simulation"))

    def items(self) -> list[Item]:
        rows = self.query("SELECT item_id, kind, cell_key, method, role, trojan, seed, question, shown FROM items "
                          "ORDER BY item_id")
        return [Item(*r[:7], json.loads(r[7]), r[8]) for r in rows]

    # participants -----------------------------------------------------------------------------------
    def participant(self, token_sha256: str) -> Participant | None:
        """The participant of a token; ``None`` also once their answers were withdrawn."""
        rows = self.query("SELECT participant_id, seed, n_items, attention_positions, completion_code, started, "
                          f"platform FROM participants WHERE token_sha256 = ? AND {LIVE}", (token_sha256,))
        return _participant(rows[0]) if rows else None

    def participants(self) -> list[Participant]:
        """Every participant but those withdrawn (see :meth:`tombstones`), in the order they started."""
        rows = self.query("SELECT participant_id, seed, n_items, attention_positions, completion_code, started, "
                          f"platform FROM participants WHERE {LIVE} ORDER BY participant_id")
        return [_participant(r) for r in rows]

    def tombstones(self) -> list[dict[str, Any]]:
        """The withdrawals: participant id, time (``deleted``), the operator who recorded it and the reason."""
        rows = self.query("SELECT participant_id, deleted, operator, reason FROM tombstones ORDER BY deleted")
        return [dict(zip(("participant_id", "deleted", "operator", "reason"), r)) for r in rows]

    def withdraw(self, participant_id: int, *, when: float, operator: str, reason: str) -> None:
        """Record that a participant's answers are withdrawn (their rows stay; listings leave them out)."""
        with self.transaction() as db:
            db.execute("INSERT INTO tombstones VALUES (?, ?, ?, ?)", (participant_id, when, operator, reason))

    # assignments and answers ------------------------------------------------------------------------
    def assignments(self, participant_id: int | None = None) -> list[Assignment]:
        where, args = ("WHERE participant_id = ?", (participant_id,)) if participant_id is not None else ("", ())
        rows = self.query("SELECT participant_id, position, item_id, permutation, assigned, lease_expires "
                          f"FROM assignments {where} ORDER BY participant_id, position", args)
        return [Assignment(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5]) for r in rows]

    def answers(self, participant_id: int | None = None) -> list[dict[str, Any]]:
        """One participant's answers, or every answer but the withdrawn participants'."""
        where, args = ("WHERE participant_id = ?", (participant_id,)) if participant_id is not None else \
            (f"WHERE {LIVE}", ())
        rows = self.query("SELECT answer_id, participant_id, item_id, position, choice, option, correct, permutation, "
                          f"shown, answered FROM answers {where} ORDER BY answer_id", args)
        names = ("answer_id", "participant_id", "item_id", "position", "choice", "option", "correct", "permutation",
                 "shown", "answered")
        return [{**dict(zip(names, r)), "correct": bool(r[6]), "permutation": json.loads(r[7])} for r in rows]


def _participant(row: tuple) -> Participant:
    return Participant(row[0], row[1], row[2], tuple(json.loads(row[3])), row[4], row[5], json.loads(row[6]))
