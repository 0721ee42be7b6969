"""The results store: one SQLite file per results folder, written transactionally, plus PNG images.

Tables: ``runs`` (resolved suite, provenance, start/finish), ``cells`` (one row per finished cell,
``ok`` or ``failed`` with the reason), ``scores`` (one row per cell and judge), ``questions`` (the
multiple-choice question of each trojan and seed). Images live in ``images/<cell key>.png``, written
before the cell's row is committed, so a committed cell always has its images.

The removal task (:mod:`trojanbench.runner.removal`) adds ``removal_cells`` (one row per edit: procedure,
guidance source, audited or clean model, trojan or none, seed, data budget, ``ok`` or ``failed``) and
``removal_scores`` (the edited model measured on each trojan it is scored for).

The editing task (:mod:`trojanbench.runner.editing`) adds ``editing_cells`` (one row per editor, rule and seed,
with the unedited and edited model's measures as JSON); the replacement task
(:mod:`trojanbench.runner.replacement`) adds ``replacement_cells`` (one row per method, budget and seed, with the
replacement's fidelity, attack success and explanation ranks as JSON).

The localization task (:mod:`trojanbench.runner.localization`) adds three tables of its own:
``localization_sets`` (each fixed set of held-out triggered images: trojan, target, seed, size, a sha256
of its pixels and masks, and the PNG strips of its images and patch masks), ``localization_cells`` (one row
per method, trojan and seed, ``ok`` or ``failed`` with the reason) and ``localization_scores`` (one row per
cell, metric and image; ``NULL`` where a metric is undefined for an image).
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL, finished REAL, status TEXT NOT NULL,
    suite TEXT NOT NULL, provenance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY, run_id INTEGER NOT NULL, method TEXT NOT NULL, role TEXT NOT NULL,
    params TEXT NOT NULL, trojan TEXT NOT NULL, kind TEXT NOT NULL, seed INTEGER NOT NULL,
    status TEXT NOT NULL, reason TEXT, seconds REAL NOT NULL, image_file TEXT, finished REAL NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    key TEXT NOT NULL, judge TEXT NOT NULL, p_true REAL NOT NULL, top1 INTEGER NOT NULL,
    probabilities TEXT NOT NULL, seconds REAL NOT NULL, PRIMARY KEY (key, judge));
CREATE TABLE IF NOT EXISTS questions (
    trojan TEXT NOT NULL, seed INTEGER NOT NULL, question TEXT NOT NULL, PRIMARY KEY (trojan, seed));
""" + """
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
""" + """
CREATE TABLE IF NOT EXISTS removal_cells (
    key TEXT PRIMARY KEY, run_id INTEGER NOT NULL, procedure TEXT NOT NULL, role TEXT NOT NULL, params TEXT NOT NULL,
    source TEXT NOT NULL, model_role TEXT NOT NULL, trojan TEXT, seed INTEGER NOT NULL, budget TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT, seconds REAL NOT NULL, finished REAL NOT NULL);
CREATE TABLE IF NOT EXISTS removal_scores (
    key TEXT NOT NULL, trojan TEXT NOT NULL, clean_accuracy REAL NOT NULL, attack_success REAL NOT NULL,
    robust_accuracy REAL NOT NULL, relearned_attack_success REAL, PRIMARY KEY (key, trojan));
CREATE TABLE IF NOT EXISTS editing_cells (
    key TEXT PRIMARY KEY, run_id INTEGER NOT NULL, editor TEXT NOT NULL, label TEXT NOT NULL, role TEXT NOT NULL,
    params TEXT NOT NULL, rule TEXT NOT NULL, kind TEXT NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL,
    reason TEXT, seconds REAL NOT NULL, measures TEXT NOT NULL, finished REAL NOT NULL);
CREATE TABLE IF NOT EXISTS replacement_cells (
    key TEXT PRIMARY KEY, run_id INTEGER NOT NULL, method TEXT NOT NULL, label TEXT NOT NULL, role TEXT NOT NULL,
    params TEXT NOT NULL, budget TEXT NOT NULL, budget_parameters INTEGER NOT NULL, seed INTEGER NOT NULL,
    status TEXT NOT NULL, reason TEXT, seconds REAL NOT NULL, measures TEXT NOT NULL, finished REAL NOT NULL);
"""

JSON_CELL_TABLES = {
    "editing_cells": ("key", "editor", "label", "role", "params", "rule", "kind", "seed", "status", "reason",
                      "seconds", "measures"),
    "replacement_cells": ("key", "method", "label", "role", "params", "budget", "budget_parameters", "seed",
                          "status", "reason", "seconds", "measures"),
}
"""The columns of the tables whose cells keep their parameters and measures as JSON (all but ``run_id`` and
``finished``)."""
JSON_COLUMNS = ("params", "measures")

STORE_FILE = "results.sqlite"


def open_database(path: str | Path, schema: str, *, threads: bool = False) -> sqlite3.Connection:
    """An autocommit connection in WAL mode with ``synchronous=FULL`` (a commit that returned survives a crash),
    with ``schema`` applied; ``threads``: usable from several threads, which the caller then serialises."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=not threads)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    return db


@contextmanager
def immediate_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write-locked (``BEGIN IMMEDIATE``) transaction, committed on exit, rolled back on an exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@dataclass(frozen=True)
class CellRow:
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


def last_run_and_cells(store: "Store", task: str, cells: list,
                       key: Callable[[Any], str]) -> tuple[dict[str, Any] | None, list]:
    """The latest run of ``task`` that planned at least one of the finished ``cells`` (a run stopped before its
    first cell does not hide the results of the one before it; ``None`` when no run of it has results), and the
    cells it planned."""
    finished = {key(cell) for cell in cells}
    runs = [r for r in store.runs() if r["suite"].get("task") == task]
    run = next((r for r in reversed(runs) if finished & set(r["suite"].get("cell_keys", []))), None)
    planned = set(run["suite"].get("cell_keys", [])) if run else set()
    return run, [cell for cell in cells if key(cell) in planned]


class Store:
    """Read and write one results folder."""

    def __init__(self, folder: str | Path, *, create: bool = True):
        self.folder = Path(folder)
        path = self.folder / STORE_FILE
        if not create and not path.is_file():
            raise ConfigError(f"{str(self.folder)!r} holds no results ({STORE_FILE} missing); "
                              f"run `trojanbench run --out {self.folder}` first.")
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "images").mkdir(exist_ok=True)
        self.db = open_database(path, SCHEMA)

    def close(self) -> None:
        self.db.close()

    def transaction(self) -> Iterator[sqlite3.Connection]:
        return immediate_transaction(self.db)

    # runs -------------------------------------------------------------------------------------------
    def start_run(self, suite: dict, provenance: dict) -> int:
        with self.transaction() as db:
            cursor = db.execute("INSERT INTO runs (started, status, suite, provenance) VALUES (?, 'running', ?, ?)",
                                (time.time(), json.dumps(suite), json.dumps(provenance)))
            return int(cursor.lastrowid)

    def finish_run(self, run_id: int, status: str = "completed") -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished = ?, status = ? WHERE run_id = ?", (time.time(), status, run_id))

    def runs(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT run_id, started, finished, status, suite, provenance FROM runs ORDER BY run_id")
        return [{"run_id": r[0], "started": r[1], "finished": r[2], "status": r[3], "suite": json.loads(r[4]),
                 "provenance": json.loads(r[5])} for r in rows]

    # cells ------------------------------------------------------------------------------------------
    def _finished_keys(self, table: str) -> set[str]:
        return {row[0] for row in self.db.execute(f"SELECT key FROM {table}")}

    def finished_keys(self) -> set[str]:
        return self._finished_keys("cells")

    def image_path(self, key: str) -> Path:
        return self.folder / "images" / f"{key}.png"

    def save_images(self, key: str, pixels: np.ndarray) -> str:
        """Write ``[n, H, W, 3]`` uint8 images as one horizontal PNG strip (atomically); return its name."""
        from PIL import Image

        path = self.image_path(key)
        tmp = path.with_suffix(".tmp.png")
        Image.fromarray(np.concatenate(list(pixels), axis=1)).save(tmp)
        tmp.replace(path)
        return path.name

    def load_images(self, row: CellRow) -> np.ndarray:
        """The ``[n, H, W, 3]`` uint8 images of a finished cell."""
        from PIL import Image

        with Image.open(self.folder / "images" / row.image_file) as img:
            strip = np.asarray(img.convert("RGB"))
        height = strip.shape[0]
        return np.stack(np.split(strip, strip.shape[1] // height, axis=1))

    def record_cell(self, run_id: int, row: CellRow, scores: list[tuple[str, float, int, list[float], float]]) -> None:
        """Commit a finished cell and its judges' scores in one transaction."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO cells VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (row.key, run_id, row.method, row.role, json.dumps(row.params, sort_keys=True), row.trojan,
                        row.kind, row.seed, row.status, row.reason, row.seconds, row.image_file, time.time()))
            db.executemany("INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?)",
                           [(row.key, judge, p, top1, json.dumps(probs), secs) for judge, p, top1, probs, secs in scores])

    def cells(self) -> list[CellRow]:
        rows = self.db.execute("SELECT key, method, role, params, trojan, kind, seed, status, reason, seconds, "
                               "image_file FROM cells ORDER BY method, trojan, seed")
        return [CellRow(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7], r[8], r[9], r[10]) for r in rows]

    def scores(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT key, judge, p_true, top1, probabilities, seconds FROM scores")
        return [{"key": r[0], "judge": r[1], "p_true": r[2], "top1": bool(r[3]), "probabilities": json.loads(r[4]),
                 "seconds": r[5]} for r in rows]

    # questions --------------------------------------------------------------------------------------
    def record_question(self, trojan: str, seed: int, question: dict) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO questions VALUES (?,?,?)", (trojan, seed, json.dumps(question)))

    def questions(self) -> dict[tuple[str, int], dict]:
        rows = self.db.execute("SELECT trojan, seed, question FROM questions")
        return {(r[0], r[1]): json.loads(r[2]) for r in rows}

    # localization -----------------------------------------------------------------------------------
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

    def finished_localization_keys(self) -> set[str]:
        return self._finished_keys("localization_cells")

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

    # removal ----------------------------------------------------------------------------------------
    def rediscovery_images(self, model_sha256: str) -> dict[tuple[str, str, int], CellRow]:
        """``{(method, trojan, seed): row}`` of finished rediscovery cells with images, from runs on the model
        whose checkpoint hash is ``model_sha256`` (the guidance the removal task reads)."""
        runs = {r["run_id"] for r in self.runs() if r["provenance"].get("model", {}).get("sha256") == model_sha256}
        rows = self.db.execute("SELECT run_id, key, method, role, params, trojan, kind, seed, status, reason, seconds, "
                               "image_file FROM cells WHERE status = 'ok' AND image_file IS NOT NULL ORDER BY finished")
        return {(r[2], r[5], r[7]): CellRow(r[1], r[2], r[3], json.loads(r[4]), *r[5:]) for r in rows if r[0] in runs}

    def finished_removal_keys(self) -> set[str]:
        return self._finished_keys("removal_cells")

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

    # editing and replacement: one row per cell, its parameters and measures as JSON -------------------
    def _record_json_cell(self, table: str, run_id: int, row: dict[str, Any]) -> None:
        """Commit one cell (``row``: the table's :data:`JSON_CELL_TABLES` columns)."""
        columns = JSON_CELL_TABLES[table]
        values = [json.dumps(row[c], sort_keys=c == "params") if c in JSON_COLUMNS else row[c] for c in columns]
        with self.transaction() as db:
            db.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}, run_id, finished) "
                       f"VALUES ({', '.join('?' * (len(columns) + 2))})", (*values, run_id, time.time()))

    def _json_cells(self, table: str, order_by: str) -> list[dict[str, Any]]:
        columns = JSON_CELL_TABLES[table]
        rows = self.db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order_by}")
        return [{c: json.loads(v) if c in JSON_COLUMNS else v for c, v in zip(columns, row)} for row in rows]

    def finished_editing_keys(self) -> set[str]:
        return self._finished_keys("editing_cells")

    def record_editing_cell(self, run_id: int, row: dict[str, Any]) -> None:
        """Commit one rule edit."""
        self._record_json_cell("editing_cells", run_id, row)

    def editing_cells(self) -> list[dict[str, Any]]:
        return self._json_cells("editing_cells", "label, rule, seed")

    def finished_replacement_keys(self) -> set[str]:
        return self._finished_keys("replacement_cells")

    def record_replacement_cell(self, run_id: int, row: dict[str, Any]) -> None:
        """Commit one fitted replacement."""
        self._record_json_cell("replacement_cells", run_id, row)

    def replacement_cells(self) -> list[dict[str, Any]]:
        return self._json_cells("replacement_cells", "label, budget_parameters, seed")
