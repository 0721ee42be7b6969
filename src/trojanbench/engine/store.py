"""The results store: one SQLite file per results folder, written transactionally, plus PNG images.

The engine's own table is ``runs`` (each invocation of a task: its resolved suite, with the keys of the cells it
planned, its provenance, start and finish). A task declares the tables it needs: a :class:`Store` subclass with
``tables`` (SQL ``CREATE TABLE IF NOT EXISTS`` statements) and the methods that read and write them, or a
:class:`CellTable` (one row per cell, parameters and measures as JSON) when that is all it needs. Images live in
``images/<name>.png``, written before the row that names them is committed, so a committed row always has its
images.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from ..errors import ConfigError

RUNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL, finished REAL, status TEXT NOT NULL,
    suite TEXT NOT NULL, provenance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS retried (key TEXT PRIMARY KEY, at REAL NOT NULL);
"""
STORE_FILE = "results.sqlite"
JSON_COLUMNS = ("params", "measures")
CELL_COLUMNS = ("key", "status", "reason", "seconds")
"""The columns every :class:`CellTable` has (beside its own, ``run_id`` and ``finished``)."""


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
class CellTable:
    """A task's table of one row per cell: the :data:`CELL_COLUMNS`, the task's ``columns`` (``params`` and
    ``measures`` hold JSON), ``run_id`` and ``finished``; read back in ``order_by`` order."""

    name: str
    columns: tuple[tuple[str, str], ...]
    """``(column, SQL type)`` after ``key``, in table order; the cell columns ``status``, ``reason``, ``seconds``
    go where they are listed (a table keeps the column order it was created with)."""
    order_by: str

    @property
    def names(self) -> tuple[str, ...]:
        return ("key", *(name for name, _ in self.columns))

    @property
    def schema(self) -> str:
        body = ", ".join(f"{name} {kind}" for name, kind in self.columns)
        return (f"CREATE TABLE IF NOT EXISTS {self.name} (key TEXT PRIMARY KEY, run_id INTEGER NOT NULL, {body}, "
                f"finished REAL NOT NULL);\n")


class Store:
    """Read and write one results folder: the engine's ``runs``, images, and the tables of a task (``tables``
    in a subclass, or ``cell_tables`` given here)."""

    tables: ClassVar[str] = ""

    def __init__(self, folder: str | Path, *, create: bool = True, cell_tables: tuple[CellTable, ...] = ()):
        self.folder = Path(folder)
        path = self.folder / STORE_FILE
        if not create and not path.is_file():
            raise ConfigError(f"{str(self.folder)!r} holds no results ({STORE_FILE} missing); "
                              f"run `trojanbench run --out {self.folder}` first.")
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "images").mkdir(exist_ok=True)
        self.cell_tables = {table.name: table for table in cell_tables}
        self.db = open_database(path, RUNS_SCHEMA + self.tables + "".join(t.schema for t in cell_tables))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def transaction(self) -> Iterator[sqlite3.Connection]:
        return immediate_transaction(self.db)

    # runs -------------------------------------------------------------------------------------------
    def start_run(self, suite: dict, provenance: dict) -> int:
        with self.transaction() as db:
            cursor = db.execute("INSERT INTO runs (started, status, suite, provenance) VALUES (?, 'running', ?, ?)",
                                (time.time(), json.dumps(suite), json.dumps(provenance)))
            return int(cursor.lastrowid)

    def add_planned(self, run_id: int, keys: list[str]) -> None:
        """Add ``keys`` to the cells a run planned (cells it only knows of once others finish)."""
        with self.transaction() as db:
            (raw,) = db.execute("SELECT suite FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            suite = json.loads(raw)
            suite["cell_keys"] = list(dict.fromkeys([*suite.get("cell_keys", []), *keys]))
            db.execute("UPDATE runs SET suite = ? WHERE run_id = ?", (json.dumps(suite), run_id))

    def finish_run(self, run_id: int, status: str = "completed") -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished = ?, status = ? WHERE run_id = ?", (time.time(), status, run_id))

    def runs(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT run_id, started, finished, status, suite, provenance FROM runs ORDER BY run_id")
        return [{"run_id": r[0], "started": r[1], "finished": r[2], "status": r[3], "suite": json.loads(r[4]),
                 "provenance": json.loads(r[5])} for r in rows]

    # cells ------------------------------------------------------------------------------------------
    def finished_keys(self, table: str) -> set[str]:
        """The keys of the cells ``table`` holds (finished: ``ok`` or ``failed``)."""
        return {row[0] for row in self.db.execute(f"SELECT key FROM {table}")}

    def cell_statuses(self, table: str) -> dict[str, tuple[str, str | None]]:
        """``{key: (status, reason)}`` of the cells ``table`` holds (every task table has the three columns)."""
        return {key: (status, reason) for key, status, reason in self.db.execute(
            f"SELECT key, status, reason FROM {table}")}

    def retried_keys(self) -> set[str]:
        """The cells a run has already computed again after they failed."""
        return {row[0] for row in self.db.execute("SELECT key FROM retried")}

    def mark_retried(self, keys: list[str]) -> None:
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO retried VALUES (?, ?)", [(key, time.time()) for key in keys])

    def record_json_cell(self, table: str, run_id: int, row: dict[str, Any]) -> None:
        """Commit one cell of a :class:`CellTable` (``row``: its columns)."""
        columns = self.cell_tables[table].names
        values = [json.dumps(row[c], sort_keys=c == "params") if c in JSON_COLUMNS else row[c] for c in columns]
        with self.transaction() as db:
            db.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}, run_id, finished) "
                       f"VALUES ({', '.join('?' * (len(columns) + 2))})", (*values, run_id, time.time()))

    def json_cells(self, table: str) -> list[dict[str, Any]]:
        """Every cell of a :class:`CellTable`, as ``{column: value}``."""
        spec = self.cell_tables[table]
        rows = self.db.execute(f"SELECT {', '.join(spec.names)} FROM {table} ORDER BY {spec.order_by}")
        return [{c: json.loads(v) if c in JSON_COLUMNS else v for c, v in zip(spec.names, row)} for row in rows]

    # images -----------------------------------------------------------------------------------------
    def image_path(self, name: str) -> Path:
        return self.folder / "images" / f"{name}.png"

    def save_images(self, name: str, pixels: np.ndarray) -> str:
        """Write ``[n, H, W, 3]`` uint8 images as one horizontal PNG strip (atomically); return its file name."""
        from PIL import Image

        path = self.image_path(name)
        tmp = path.with_suffix(".tmp.png")
        Image.fromarray(np.concatenate(list(pixels), axis=1)).save(tmp)
        tmp.replace(path)
        return path.name

    def load_image_strip(self, image_file: str) -> np.ndarray:
        """The ``[n, H, W, 3]`` uint8 images of a strip written by :meth:`save_images`."""
        from PIL import Image

        with Image.open(self.folder / "images" / image_file) as img:
            strip = np.asarray(img.convert("RGB"))
        height = strip.shape[0]
        return np.stack(np.split(strip, strip.shape[1] // height, axis=1))
