"""A study made from a finished run, and who sees what (the protocol of Casper et al. 2023, section 4).

Each item shows one tool's images for one trojan and seed beside the question's 8 options, in an order
drawn on the server from the participant's seed and stored with the answer. Assignment balances the
(tool, trojan) cells: the next item comes from a least-filled cell (answers plus unexpired leases) whose
trojan the participant has not seen; ties are broken by the participant's seed. Two attention checks per
study (a concept drawn plainly, among 7 others of its kind) sit at positions drawn per participant; a
participant who fails one is excluded from scores but kept in the export, and so is every later session of a
crowd-platform participant id (``PROLIFIC_PID``) that an earlier session used. A participant quotes the id shown on
their pages (:meth:`Study.reference`) to have their answers withdrawn (:func:`withdraw`).

Scripted participants take a simulation (:meth:`Study.open_simulation`): a copy of the study in its own file, never the
people's.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ConfigError, SurveyError, did_you_mean
from ..judges.questions import CONCEPT_KIND_OF, N_OPTIONS
from ..tasks.rediscovery.store import CellRow, RediscoveryStore
from ..world import concepts_of_kind
from .pictures import attention_png, cell_png, option_png
from .store import LIVE, SIMULATION_FILE, SURVEY_FILE, Assignment, Participant, SurveyStore

log = logging.getLogger(__name__)

ATTENTION_CHECKS = 2
PERSON_FIELD = "PROLIFIC_PID"
"""The crowd-platform id of a person: a session that repeats an earlier one's is not scored."""
SHOWN_ROLES = ("tool", "baseline", "oracle")
"""Roles whose cells people are asked about; combinations pool several tools' images and are not shown."""
DEFAULT_LEASE_SECONDS = 20 * 60


@dataclass(frozen=True)
class StudyDesign:
    """What a study asks, fixed when it is created (stored in ``survey.sqlite``).

    ``methods``: the methods whose cells are shown (default: every tool, baseline and oracle of the run);
    ``items_per_participant``: cell items per participant, at most one per trojan (default: one per trojan);
    ``answers_per_cell``: stop admitting participants once every cell has this many answers (default: never);
    ``completion_code``: the crowd platform's code shown at the end (default: a random code per participant);
    ``seed``: draws the attention checks and every participant's seed.
    """

    methods: tuple[str, ...] | None = None
    items_per_participant: int | None = None
    answers_per_cell: int | None = None
    completion_code: str | None = None
    seed: int = 0

    def __post_init__(self):
        if self.methods is not None:
            object.__setattr__(self, "methods", tuple(self.methods))
        for name in ("items_per_participant", "answers_per_cell"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"The study's {name!r} must be an int >= 1. Got {value!r} instead.")


class Study:
    """A study over one results folder: its items, participants, assignments and answers."""

    def __init__(self, results_dir: str | Path, store: SurveyStore, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 clock: Callable[[], float] = time.time):
        if lease_seconds <= 0:
            raise ConfigError(f"lease_seconds must be > 0. Got {lease_seconds!r} instead.")
        self.results_dir = Path(results_dir)
        self.store, self.lease_seconds, self.clock = store, lease_seconds, clock
        self.design = StudyDesign(**store.setting("design"))
        self.secret = bytes.fromhex(store.setting("secret"))
        self.simulation = store.simulation
        self.items = {item.item_id: item for item in store.items()}
        self.cells = sorted({item.cell for item in self.items.values() if item.cell})
        self.n_cell_items = min(self.design.items_per_participant or len(self.trojans), len(self.trojans))
        self.results = RediscoveryStore(self.results_dir, create=False)
        self.cell_rows: dict[str, CellRow] = {c.key: c for c in self.results.cells()}
        self.picture = functools.lru_cache(maxsize=512)(self._picture)

    def close(self) -> None:
        self.results.close()
        self.store.close()

    def _picture(self, item_id: int) -> bytes:
        """What item ``item_id`` shows above its options (PNG)."""
        item = self.items[item_id]
        if item.kind == "attention":
            return attention_png(item.shown, item.question["kind"])
        return cell_png(self.results, self.cell_rows[item.cell_key])

    def option_picture(self, assignment: Assignment, choice: int) -> bytes:
        """Displayed option ``choice`` of an assignment (PNG)."""
        question = self.items[assignment.item_id].question
        return option_png(question["options"][assignment.permutation[choice]], question["kind"])

    def reference(self, participant_id: int) -> str:
        """The id a participant is shown and quotes to withdraw: see :func:`participant_reference`."""
        return participant_reference(self.secret, participant_id)

    @property
    def trojans(self) -> list[str]:
        return sorted({item.trojan for item in self.items.values() if item.kind == "cell"})

    @classmethod
    def open(cls, results_dir: str | Path, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
             clock: Callable[[], float] = time.time, **design) -> "Study":
        """Open the study of ``results_dir`` (``survey.sqlite``), creating it the first time from the
        :class:`StudyDesign` fields given in ``design`` (``None`` meaning the default).

        Reopening with a field that differs from the stored design is refused: the answers already given
        belong to the stored one.
        """
        return cls._open(results_dir, False, lease_seconds, clock, design)

    @classmethod
    def open_simulation(cls, results_dir: str | Path, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                   clock: Callable[[], float] = time.time) -> "Study":
        """A fresh simulation of the study of ``results_dir``: ``survey-simulation.sqlite`` (replaced each time), with
        the design of the people's study where one exists (read, never written), marked as a simulation."""
        folder = Path(results_dir)
        design = {}
        if (folder / SURVEY_FILE).is_file():
            people = SurveyStore.in_folder(folder)
            try:
                design = people.setting("design") or {}
            finally:
                people.close()
        for suffix in ("", "-wal", "-shm"):
            (folder / (SIMULATION_FILE + suffix)).unlink(missing_ok=True)
        return cls._open(folder, True, lease_seconds, clock, design)

    @classmethod
    def _open(cls, results_dir: str | Path, simulation: bool, lease_seconds: float, clock: Callable[[], float],
              design: dict) -> "Study":
        given = {k: (list(v) if k == "methods" else v) for k, v in design.items() if v is not None}
        results = RediscoveryStore(results_dir, create=False)
        store = SurveyStore.in_folder(results_dir, simulation)
        try:
            stored = store.setting("design")
            if stored is None:
                _create(store, results, StudyDesign(**given), simulation)
            elif any(stored.get(k) != v for k, v in given.items()):
                changed = ", ".join(f"{k}={stored.get(k)!r}" for k, v in given.items() if stored.get(k) != v)
                raise ConfigError(f"{store.path} holds a study created with {changed}; serve it with the same options "
                                  "(or none), or copy the results to a new folder for a new study.")
        except BaseException:
            store.close()
            raise
        finally:
            results.close()
        return cls(results_dir, store, lease_seconds=lease_seconds, clock=clock)

    # participants -----------------------------------------------------------------------------------
    def is_full(self) -> bool:
        target = self.design.answers_per_cell
        return target is not None and min(self._cell_counts(self.clock(), leases=False).values(), default=0) >= target

    def start_participant(self, token_sha256: str, platform: dict[str, str], *, consent_form: str | None = None
                          ) -> Participant:
        """Register a participant (``platform``: crowd-platform ids, recorded, never trusted; ``consent_form``: the
        id of the consent form they sent, refused with 409 when it was sent before)."""
        if self.is_full():
            raise SurveyError("This study has all the answers it needs; thank you for your interest.", 410)
        n_items = self.n_cell_items + ATTENTION_CHECKS
        with self.store.transaction() as db:
            participant_id = db.execute("SELECT COALESCE(MAX(participant_id), 0) + 1 FROM participants").fetchone()[0]
            if consent_form is not None:
                if db.execute("SELECT 1 FROM consent_forms WHERE nonce = ?", (consent_form,)).fetchone():
                    raise SurveyError("This consent form was already sent; continue from the study's first page.", 409)
                db.execute("INSERT INTO consent_forms VALUES (?, ?)", (consent_form, participant_id))
            if platform.get(PERSON_FIELD) and db.execute(
                    f"SELECT 1 FROM participants WHERE json_extract(platform, ?) = ? AND {LIVE}",
                    (f"$.{PERSON_FIELD}", platform[PERSON_FIELD])).fetchone():
                log.warning("participant %d repeats an earlier session's %s; their answers are kept, not scored",
                            participant_id, PERSON_FIELD)
            seed = int(np.random.SeedSequence([self.design.seed, participant_id]).generate_state(1)[0])
            rng = np.random.default_rng([seed, 0])
            attention = sorted(int(p) for p in rng.choice(np.arange(1, n_items), ATTENTION_CHECKS, replace=False))
            code = self.design.completion_code or secrets.token_hex(5).upper()
            db.execute("INSERT INTO participants VALUES (?,?,?,?,?,?,?,?)",
                       (participant_id, token_sha256, seed, n_items, json.dumps(attention), code, self.clock(),
                        json.dumps(platform, sort_keys=True)))
        log.info("participant %d started", participant_id)
        return self.store.participant(token_sha256)

    def answered_positions(self, participant: Participant) -> set[int]:
        return {a["position"] for a in self.store.answers(participant.participant_id)}

    def is_complete(self, participant: Participant) -> bool:
        return len(self.answered_positions(participant)) >= participant.n_items

    # assignment -------------------------------------------------------------------------------------
    def current(self, participant: Participant) -> Assignment | None:
        """The item the participant should answer now (renewing its lease), or ``None`` once all are answered."""
        now = self.clock()
        with self.store.transaction() as db:
            answered = {r[0] for r in db.execute("SELECT position FROM answers WHERE participant_id = ?",
                                                 (participant.participant_id,))}
            assignments = self.store.assignments(participant.participant_id)
            pending = [a for a in assignments if a.position not in answered]
            if pending:
                db.execute("UPDATE assignments SET lease_expires = ? WHERE participant_id = ? AND position = ?",
                           (now + self.lease_seconds, participant.participant_id, pending[0].position))
                return replace(pending[0], lease_expires=now + self.lease_seconds)
            position = len(assignments)
            if position >= participant.n_items:
                return None
            item_id = self._choose(participant, position, assignments, now)
            permutation = tuple(int(i) for i in np.random.default_rng([participant.seed, 1, position])
                                .permutation(N_OPTIONS))
            assignment = Assignment(participant.participant_id, position, item_id, permutation, now,
                                    now + self.lease_seconds)
            db.execute("INSERT INTO assignments VALUES (?,?,?,?,?,?)",
                       (assignment.participant_id, position, item_id, json.dumps(permutation), now,
                        assignment.lease_expires))
            return assignment

    def assignment(self, participant: Participant, position: int) -> Assignment:
        """The participant's own assignment at ``position``; any other is refused as not found."""
        for assignment in self.store.assignments(participant.participant_id):
            if assignment.position == position:
                return assignment
        raise SurveyError(f"No item {position} has been shown to you.", 404)

    def _choose(self, participant: Participant, position: int, assignments: list[Assignment], now: float) -> int:
        """An attention check at the participant's attention positions, else an item of a least-filled cell."""
        attention = [i for i, item in sorted(self.items.items()) if item.kind == "attention"]
        if position in participant.attention_positions:
            return attention[participant.attention_positions.index(position)]
        seen = {self.items[a.item_id].trojan for a in assignments}
        per_item = self._item_counts(now)
        per_cell = self._cell_counts(now, per_item=per_item)
        open_cells = [cell for cell in self.cells if cell[1] not in seen]
        rng = np.random.default_rng([participant.seed, 2, position])
        fewest = min(per_cell[c] for c in open_cells)
        method, trojan = _pick([c for c in open_cells if per_cell[c] == fewest], rng)
        candidates = [i for i, item in sorted(self.items.items()) if item.cell == (method, trojan)]
        least = min(per_item.get(i, 0) for i in candidates)
        return _pick([i for i in candidates if per_item.get(i, 0) == least], rng)

    def _item_counts(self, now: float, leases: bool = True) -> dict[int, int]:
        """Answers per item, plus the unexpired leases of unanswered assignments when ``leases``."""
        counts = dict(self.store.query(f"SELECT item_id, COUNT(*) FROM answers WHERE {LIVE} GROUP BY item_id"))
        if leases:
            for item_id, n in self.store.query(
                    "SELECT s.item_id, COUNT(*) FROM assignments s LEFT JOIN answers a ON a.participant_id = "
                    "s.participant_id AND a.item_id = s.item_id WHERE a.answer_id IS NULL AND s.lease_expires > ? "
                    "GROUP BY s.item_id", (now,)):
                counts[item_id] = counts.get(item_id, 0) + n
        return counts

    def _cell_counts(self, now: float, leases: bool = True, per_item: dict[int, int] | None = None
                     ) -> dict[tuple[str, str], int]:
        per_item = self._item_counts(now, leases) if per_item is None else per_item
        counts = {cell: 0 for cell in self.cells}
        for item_id, n in per_item.items():
            if self.items[item_id].cell:
                counts[self.items[item_id].cell] += n
        return counts

    def fill(self) -> dict[tuple[str, str], int]:
        """Answers per (tool, trojan) cell so far."""
        return self._cell_counts(self.clock(), leases=False)

    # answers ----------------------------------------------------------------------------------------
    def answer(self, participant: Participant, position: int, choice: int) -> dict:
        """Record that the participant chose displayed option ``choice`` at ``position``; committed on return.

        Repeating the same answer returns the stored one (idempotent); a different answer to an answered item,
        a choice outside the options shown, or a position that is not the participant's is refused.
        """
        assignment = self.assignment(participant, position)
        if not isinstance(choice, int) or not 0 <= choice < len(assignment.permutation):
            raise SurveyError(f"The answer must be one of the {len(assignment.permutation)} options shown.", 400)
        item = self.items[assignment.item_id]
        option_index = assignment.permutation[choice]
        with self.store.transaction() as db:
            row = db.execute("SELECT choice FROM answers WHERE participant_id = ? AND item_id = ?",
                             (participant.participant_id, item.item_id)).fetchone()
            if row is None:
                db.execute("INSERT INTO answers (participant_id, item_id, position, choice, option, correct, "
                           "permutation, shown, answered) VALUES (?,?,?,?,?,?,?,?,?)",
                           (participant.participant_id, item.item_id, position, choice,
                            item.question["options"][option_index],
                            int(option_index == item.question["truth_index"]), json.dumps(assignment.permutation),
                            assignment.assigned, self.clock()))
            elif row[0] != choice:
                raise SurveyError("This item is already answered; answers cannot be changed.", 409)
        return next(a for a in self.store.answers(participant.participant_id) if a["position"] == position)

    def statuses(self) -> dict[int, dict[str, bool]]:
        """Per participant: ``completed`` (every item answered), ``excluded`` (failed an attention check) and
        ``scored`` (completed, not excluded and not a repeated session, see :func:`repeated_sessions`: the answers
        that count)."""
        return participant_statuses(self.store)


def repeated_sessions(store: SurveyStore) -> dict[int, int]:
    """The participants whose crowd-platform id (``PROLIFIC_PID``) an earlier participant had, each mapped to the
    first participant with that id."""
    first: dict[str, int] = {}
    repeats = {}
    for participant in store.participants():  # in the order they started
        person = participant.platform.get(PERSON_FIELD)
        if person is not None:
            if person in first:
                repeats[participant.participant_id] = first[person]
            else:
                first[person] = participant.participant_id
    return repeats


def participant_statuses(store: SurveyStore) -> dict[int, dict[str, bool]]:
    """See :meth:`Study.statuses` (also read by the report, which needs no running study)."""
    repeats = repeated_sessions(store)
    attention = {item.item_id for item in store.items() if item.kind == "attention"}
    by_participant: dict[int, list[dict]] = {}
    for answer in store.answers():
        by_participant.setdefault(answer["participant_id"], []).append(answer)
    out = {}
    for participant in store.participants():
        own = by_participant.get(participant.participant_id, [])
        completed = len(own) >= participant.n_items
        excluded = any(a["item_id"] in attention and not a["correct"] for a in own)
        out[participant.participant_id] = {"completed": completed, "excluded": excluded,
                                           "scored": completed and not excluded
                                           and participant.participant_id not in repeats}
    return out


def participant_reference(secret: bytes, participant_id: int) -> str:
    """``"<participant id>-<check>"``: the check (6 hex digits keyed by the study's secret) makes an id that was not
    shown to someone hard to quote."""
    check = hmac.new(secret, f"participant:{participant_id}".encode(), hashlib.sha256).hexdigest()[:6].upper()
    return f"{participant_id}-{check}"


def withdraw(results_dir: str | Path, reference: str, *, reason: str, operator: str | None = None,
             clock: Callable[[], float] = time.time) -> int:
    """Withdraw a participant's answers from the study of ``results_dir`` on their request: a tombstone (when, by
    ``operator``, default the login name, and why) leaves them out of every export and score; the rows stay (the
    answers table is append-only). ``reference``: the id shown on their pages (``"7-3F9A2C"``) or the bare
    participant id of the export (``"7"``). Returns how many answers were withdrawn."""
    path = Path(results_dir) / SURVEY_FILE
    if not path.is_file():
        raise ConfigError(f"{str(results_dir)!r} holds no study ({SURVEY_FILE}); give the folder that was served.")
    if not reason.strip():
        raise ConfigError("A withdrawal needs a reason (e.g. 'asked by email on 2026-12-03').")
    store = SurveyStore(path)
    try:
        number, _, check = reference.strip().partition("-")
        if not number.isdigit():
            raise ConfigError(f"A participant id is a number, optionally with its check ('7-3F9A2C'). "
                              f"Got {reference!r} instead.")
        participant_id = int(number)
        if check and participant_reference(bytes.fromhex(store.setting("secret")), participant_id) != \
                f"{participant_id}-{check.upper()}":
            raise ConfigError(f"{reference!r} is not an id this study showed; check it with the participant.")
        if not store.query("SELECT 1 FROM participants WHERE participant_id = ?", (participant_id,)):
            raise ConfigError(f"The study in {str(results_dir)!r} has no participant {participant_id}.")
        if any(t["participant_id"] == participant_id for t in store.tombstones()):
            raise ConfigError(f"Participant {participant_id}'s answers were already withdrawn.")
        n_answers = len(store.answers(participant_id))
        store.withdraw(participant_id, when=clock(), operator=operator or getpass.getuser(), reason=reason.strip())
    finally:
        store.close()
    log.warning("withdrew participant %d's %d answers (%s)", participant_id, n_answers, reason.strip())
    return n_answers


def _pick(choices: list, rng: np.random.Generator):
    return choices[int(rng.integers(len(choices)))]


def _create(store: SurveyStore, results: RediscoveryStore, design: StudyDesign, simulation: bool) -> None:
    """Write the design, a fresh secret, whether it is a simulation and the items (every shown cell, two attention
    checks)."""
    cells = [c for c in results.cells() if c.status == "ok" and c.image_file and c.role in SHOWN_ROLES]
    available = sorted({c.method for c in cells})
    for method in design.methods or ():
        if method not in available:
            raise did_you_mean(method, available, "method with images to show in these results")
    cells = [c for c in cells if not design.methods or c.method in design.methods]
    if not cells:
        raise ConfigError(f"{str(results.folder)!r} has no finished cells with images to show people; "
                          "run `trojanbench run --out DIR` first.")
    questions = results.questions()
    rows = [("cell", c.key, c.method, c.role, c.trojan, c.seed, json.dumps(questions[(c.trojan, c.seed)]), None)
            for c in cells if (c.trojan, c.seed) in questions]
    truths = {q["options"][q["truth_index"]] for q in questions.values()}
    kinds = sorted({q["kind"] for q in questions.values()})
    rng = np.random.default_rng([design.seed, 3])
    for index in range(ATTENTION_CHECKS):
        kind = kinds[index % len(kinds)]
        question = _attention_question(kind, truths, rng, f"attention-{index + 1}", design.seed)
        rows.append(("attention", None, None, None, None, None, json.dumps(question),
                     question["options"][question["truth_index"]]))
    with store.transaction() as db:
        db.execute("INSERT INTO study VALUES ('design', ?)", (json.dumps(asdict(design)),))
        db.execute("INSERT INTO study VALUES ('secret', ?)", (json.dumps(secrets.token_hex(32)),))
        db.execute("INSERT INTO study VALUES ('results', ?)", (json.dumps(str(results.folder.resolve())),))
        db.execute("INSERT INTO study VALUES ('simulation', ?)", (json.dumps(simulation),))
        db.executemany("INSERT INTO items (kind, cell_key, method, role, trojan, seed, question, shown) "
                       "VALUES (?,?,?,?,?,?,?,?)", rows)
    log.info("created a study of %d items over %d methods in %s", len(rows), len({c.method for c in cells}),
             store.path)


def _attention_question(kind: str, truths: set[str], rng: np.random.Generator, name: str, seed: int) -> dict:
    """A question whose answer is plain: one concept of ``kind`` (never a study trojan's trigger) and 7 others."""
    pool = [c for c in concepts_of_kind(CONCEPT_KIND_OF[kind]) if c not in truths]
    if len(pool) < N_OPTIONS:
        raise ConfigError(f"An attention check of kind {kind!r} needs {N_OPTIONS} concepts that are no trojan's "
                          f"trigger; the world has {len(pool)}.")
    options = [pool[i] for i in rng.choice(len(pool), N_OPTIONS, replace=False)]
    return {"trojan": name, "kind": kind, "options": options, "truth_index": 0, "seed": seed}
