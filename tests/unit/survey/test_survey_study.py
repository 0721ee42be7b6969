"""The study's protocol without a server: items, balanced assignment, leases, attention checks, answers."""

from __future__ import annotations

import shutil
import sqlite3
from collections import Counter

import pytest

from trojanbench.errors import ConfigError, SurveyError, UnknownNameError
from trojanbench.survey.security import new_token, token_digest
from trojanbench.survey.study import ATTENTION_CHECKS, Study

from survey_results import METHODS, TROJANS, ManualClock, write_results


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_results(tmp_path_factory.mktemp("survey-results") / "run", seeds=(0, 1))


@pytest.fixture
def folder(results, tmp_path):
    return shutil.copytree(results, tmp_path / "run")


def _join(study: Study, label: str = ""):
    return study.start_participant(token_digest(new_token()), {"PROLIFIC_PID": label} if label else {})


def _take_whole_study(study: Study, participant, choice: int = 0):
    shown = []
    while (assignment := study.current(participant)) is not None:
        shown.append(study.items[assignment.item_id])
        study.answer(participant, assignment.position, choice)
    return shown


def test_items_cover_every_shown_cell_and_two_attention_checks_but_no_combination(folder):
    study = Study.open(folder)
    cells = [item for item in study.items.values() if item.kind == "cell"]
    assert len(cells) == len(METHODS) * len(TROJANS) * 2
    assert {item.method for item in cells} == set(METHODS)  # the combination "all" has no images of its own
    attention = [item for item in study.items.values() if item.kind == "attention"]
    assert len(attention) == ATTENTION_CHECKS
    truths = {item.question["options"][item.question["truth_index"]] for item in cells}
    for item in attention:
        assert item.shown == item.question["options"][item.question["truth_index"]]
        assert item.shown not in truths and len(set(item.question["options"])) == 8


def test_each_participant_sees_every_trojan_once_and_both_attention_checks(folder):
    study = Study.open(folder, seed=5)
    for _ in range(6):
        participant = _join(study)
        shown = _take_whole_study(study, participant)
        cells = [item for item in shown if item.kind == "cell"]
        assert sorted(item.trojan for item in cells) == sorted(TROJANS)
        positions = [i for i, item in enumerate(shown) if item.kind == "attention"]
        assert positions == list(participant.attention_positions) and 0 not in positions
        assert study.is_complete(participant)


def test_assignment_fills_the_least_filled_cells_first(folder):
    study = Study.open(folder)
    for _ in range(len(METHODS) * 2):
        _take_whole_study(study, _join(study))
    fill = study.fill()
    assert len(fill) == len(METHODS) * len(TROJANS)
    assert max(fill.values()) - min(fill.values()) <= 1
    per_item = Counter(a["item_id"] for a in study.store.answers() if study.items[a["item_id"]].kind == "cell")
    for cell in fill:  # seeds within a cell are balanced too
        counts = [per_item.get(i, 0) for i, item in study.items.items() if item.cell == cell]
        assert max(counts) - min(counts) <= 1


def test_leases_hold_a_cell_until_they_expire(folder):
    clock = ManualClock()
    study = Study.open(folder, methods=["alpha"], items_per_participant=1, lease_seconds=60, clock=clock)
    first = _join(study)
    held = study.items[study.current(first).item_id].cell  # leased, not answered
    others = []
    for _ in range(len(TROJANS) - 1):
        participant = _join(study)
        assignment = study.current(participant)
        others.append(study.items[assignment.item_id].cell)
        study.answer(participant, assignment.position, 0)
    assert held not in others and len(set(others)) == len(TROJANS) - 1, "a leased cell counts as filled"
    clock.now += 61
    late = _join(study)
    assert study.items[study.current(late).item_id].cell == held, "an expired lease frees its cell"
    again = study.current(first)  # the first participant's item is still theirs, with a renewed lease
    assert study.items[again.item_id].cell == held and again.lease_expires == clock.now + 60


def test_the_permutation_shown_is_the_one_stored_with_the_answer(folder):
    study = Study.open(folder)
    participant = _join(study)
    assignment = study.current(participant)
    assert sorted(assignment.permutation) == list(range(8))
    assert study.current(participant).permutation == assignment.permutation  # reloading shows the same order
    answer = study.answer(participant, assignment.position, 3)
    item = study.items[assignment.item_id]
    assert tuple(answer["permutation"]) == assignment.permutation
    assert answer["option"] == item.question["options"][assignment.permutation[3]]
    assert answer["correct"] == (assignment.permutation[3] == item.question["truth_index"])


def test_resubmission_is_idempotent_and_a_changed_answer_is_refused(folder):
    study = Study.open(folder)
    participant = _join(study)
    assignment = study.current(participant)
    first = study.answer(participant, assignment.position, 2)
    assert study.answer(participant, assignment.position, 2) == first
    with pytest.raises(SurveyError) as refused:
        study.answer(participant, assignment.position, 5)
    assert refused.value.status == 409
    assert len(study.store.answers(participant.participant_id)) == 1


@pytest.mark.parametrize("choice", [-1, 8, 99])
def test_an_answer_not_among_the_options_is_refused(folder, choice):
    study = Study.open(folder)
    participant = _join(study)
    assignment = study.current(participant)
    with pytest.raises(SurveyError) as refused:
        study.answer(participant, assignment.position, choice)
    assert refused.value.status == 400 and study.store.answers() == []


def test_a_participant_can_only_answer_their_own_items(folder):
    study = Study.open(folder)
    a, b = _join(study, "A"), _join(study, "B")
    study.current(b)
    with pytest.raises(SurveyError) as refused:
        study.answer(a, 0, 1)  # position 0 exists for B only
    assert refused.value.status == 404
    with pytest.raises(SurveyError):
        study.assignment(a, 0)


def test_answers_are_append_only_in_the_database(folder):
    study = Study.open(folder)
    participant = _join(study)
    study.answer(participant, study.current(participant).position, 1)
    for statement in ("UPDATE answers SET choice = 4", "DELETE FROM answers"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            study.store.db.execute(statement)
    with pytest.raises(sqlite3.IntegrityError):
        study.store.db.execute("INSERT INTO answers (participant_id, item_id, position, choice, option, correct, "
                               "permutation, shown, answered) SELECT participant_id, item_id, position, 0, option, "
                               "correct, permutation, shown, answered FROM answers")


def test_failing_an_attention_check_excludes_but_keeps_the_participant(folder):
    study = Study.open(folder)
    careful, careless = _join(study), _join(study)
    for participant, right in ((careful, True), (careless, False)):
        while (assignment := study.current(participant)) is not None:
            item = study.items[assignment.item_id]
            truth = assignment.permutation.index(item.question["truth_index"])
            choice = truth if right or item.kind == "cell" else (truth + 1) % 8
            study.answer(participant, assignment.position, choice)
    statuses = study.statuses()
    assert statuses[careful.participant_id] == {"completed": True, "excluded": False, "scored": True}
    assert statuses[careless.participant_id] == {"completed": True, "excluded": True, "scored": False}


def test_the_study_is_full_once_every_cell_has_its_answers(folder):
    study = Study.open(folder, answers_per_cell=1)
    while not study.is_full():
        _take_whole_study(study, _join(study))
    with pytest.raises(SurveyError) as refused:
        _join(study)
    assert refused.value.status == 410


def test_reopening_with_another_design_is_refused_and_the_stored_one_kept(folder):
    Study.open(folder, items_per_participant=2, seed=1).close()
    assert Study.open(folder).n_cell_items == 2
    assert Study.open(folder, seed=1).design.seed == 1
    with pytest.raises(ConfigError, match="items_per_participant=2"):
        Study.open(folder, items_per_participant=3)


def test_unknown_methods_and_bad_designs_are_clear_errors(folder, tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean: alpha"):
        Study.open(folder, methods=["alpah"])
    with pytest.raises(UnknownNameError, match="Available: alpha, beta, oracle, random_noise"):
        Study.open(folder, methods=["all"])
    with pytest.raises(ConfigError, match="items_per_participant"):
        Study.open(folder, items_per_participant=0)
    with pytest.raises(ConfigError, match="holds no results"):
        Study.open(tmp_path / "empty")
