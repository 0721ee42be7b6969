"""Exports of a study's answers: every participant (excluded ones flagged, and repeated sessions of a crowd-platform
id with ``repeat_of``, the first session's participant id), the option order each was shown
(``permutation``: displayed option ``k`` is the question's option ``permutation[k]``), crowd-platform ids as
recorded, and timings. A simulation's exports say so (``simulated`` on every row, ``simulation`` in the document);
withdrawn participants (see :func:`~trojanbench.survey.study.withdraw`) are left out, their withdrawals listed
(participant id and time) in the JSON document."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from .store import SurveyStore
from .study import participant_statuses, repeated_sessions

EXPORT_FORMAT = "trojanbench-survey/1"
CSV_COLUMNS = ("answer_id", "participant_id", "PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "completed", "excluded",
               "scored", "repeat_of", "item_id", "item_kind", "method", "role", "trojan", "seed", "position", "choice",
               "option", "truth", "correct", "permutation", "options_shown", "shown", "answered", "seconds",
               "simulated")


def answer_rows(store: SurveyStore) -> list[dict[str, Any]]:
    """One row per answer, with its participant's status and platform ids and its item's cell."""
    statuses, repeats = participant_statuses(store), repeated_sessions(store)
    participants = {p.participant_id: p for p in store.participants()}
    items = {item.item_id: item for item in store.items()}
    simulated = store.simulation
    rows = []
    for answer in store.answers():
        item, participant = items[answer["item_id"]], participants[answer["participant_id"]]
        options = item.question["options"]
        rows.append({**answer, **{name: participant.platform.get(name) for name in CSV_COLUMNS[2:5]},
                     **statuses[participant.participant_id], "repeat_of": repeats.get(participant.participant_id),
                     "item_kind": item.kind, "method": item.method,
                     "role": item.role, "trojan": item.trojan or item.question["trojan"], "seed": item.seed,
                     "truth": options[item.question["truth_index"]],
                     "options_shown": [options[i] for i in answer["permutation"]],
                     "seconds": round(answer["answered"] - answer["shown"], 3), "simulated": simulated})
    return rows


def export_csv(store: SurveyStore) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in answer_rows(store):
        writer.writerow({**row, "permutation": " ".join(map(str, row["permutation"])),
                         "options_shown": " ".join(row["options_shown"])})
    return buffer.getvalue()


def export_json(store: SurveyStore) -> str:
    """The study's design, items, participants (with status flags and platform ids) and answers."""
    statuses, repeats = participant_statuses(store), repeated_sessions(store)
    document = {
        "format": EXPORT_FORMAT, "simulation": store.simulation, "design": store.setting("design"),
        "results": store.setting("results"),
        "items": [{"item_id": i.item_id, "kind": i.kind, "cell_key": i.cell_key, "method": i.method, "role": i.role,
                   "trojan": i.trojan, "seed": i.seed, "question": i.question} for i in store.items()],
        "participants": [{"participant_id": p.participant_id, "started": p.started, "n_items": p.n_items,
                          "attention_positions": list(p.attention_positions), "completion_code": p.completion_code,
                          "platform": p.platform, **statuses[p.participant_id],
                          "repeat_of": repeats.get(p.participant_id)} for p in store.participants()],
        "withdrawn": [{"participant_id": t["participant_id"], "deleted": t["deleted"]} for t in store.tombstones()],
        "answers": answer_rows(store)}
    return json.dumps(document, indent=1)
