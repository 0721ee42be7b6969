"""People's rights in the survey, on a real server on localhost: scripted participants never mix with people
(``survey simulate`` takes its own copy of the study), and a participant's answers are withdrawn on request by the
id their pages show, through a tombstone that keeps the audit trail."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from click.testing import CliRunner

from trojanbench import load_results
from trojanbench.cli import main
from trojanbench.survey import human_scores
from trojanbench.survey.app import create_app, serving
from trojanbench.survey.export import export_json
from trojanbench.survey.scores import human_section
from trojanbench.survey.simulate import CSRF, HttpSession, join_study
from trojanbench.survey.store import SURVEY_FILE, SurveyStore
from trojanbench.survey.study import Study

from survey_results import ADMIN, GENEROUS, write_results
from test_survey_app import admin_get

SIMULATION_FILE = "survey-simulation.sqlite"
PARTICIPANT_ID = re.compile(r'class="participant-id">([^<]+)<')


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_results(tmp_path_factory.mktemp("survey-rights") / "run")


def take_part(url: str, label: str) -> tuple[HttpSession, list[str | None]]:
    """A person who agrees and answers every page (option A); returns their session and the participant id each
    page after consent showed (instructions, every item, the completion page)."""
    session = HttpSession(url, retry_seconds=0)
    join_study(session, {"PROLIFIC_PID": label})
    pages = [session.request("GET", "/instructions")[2].decode()]
    while True:
        status, _, page = session.request("GET", "/item")
        if status == 303:
            break
        html = page.decode()
        pages.append(html)
        position = int(re.search(r'action="/item/(\d+)"', html).group(1))
        form = {"csrf": CSRF.search(html).group(1), "choice": "0"}
        assert session.request("POST", f"/item/{position}", form)[0] == 303
    pages.append(session.request("GET", "/done")[2].decode())
    return session, [m.group(1) if (m := PARTICIPANT_ID.search(p)) else None for p in pages]


@pytest.mark.slow
def test_simulated_participants_take_their_own_copy_and_the_report_counts_only_people(served):
    url, study, folder = served
    take_part(url, "person-1")
    people_before = admin_get(url, "/admin/export.csv")
    result = CliRunner().invoke(main, ["survey", "simulate", str(folder), "--participants", "3", "--noise", "0"])
    assert result.exit_code == 0, result.output
    assert "3 participants, 3 completed, 18 answers acknowledged, 0 failed" in result.output
    assert admin_get(url, "/admin/export.csv") == people_before, "the people's study is untouched"
    assert sum(study.fill().values()) == study.n_cell_items, "only the person fills cells"
    humans = human_section(load_results(folder))
    assert humans["participants"]["started"] == 1 and humans["simulation"] is False
    simulation = SurveyStore(folder / SIMULATION_FILE)
    try:
        document = json.loads(export_json(simulation))
        assert document["simulation"] is True and len(document["participants"]) == 3
        assert {a["PROLIFIC_PID"] for a in document["answers"]} == {"sim-0", "sim-1", "sim-2"}
        assert all(a["simulated"] for a in document["answers"])
        assert document["design"] == json.loads(export_json(study.store))["design"], "the people's design, copied"
    finally:
        simulation.close()
    replay = Study.open_simulation(folder)  # each run starts afresh, and its admin summary says what it is
    try:
        assert replay.store.participants() == [] and replay.simulation
        with serving(create_app(replay, ADMIN, limits=GENEROUS)) as simulation_url:
            assert "Simulation: scripted participants" in admin_get(simulation_url, "/admin").decode()
    finally:
        replay.close()
    assert "Simulation" not in admin_get(url, "/admin").decode()


def test_a_participant_withdraws_by_the_id_their_pages_show_and_a_tombstone_keeps_the_trail(served):
    url, study, folder = served
    consent = HttpSession(url, retry_seconds=0).request("GET", "/")[2].decode()
    assert "participant id" in consent and "withdraw" in consent
    session, shown = take_part(url, "person-1")
    take_part(url, "person-2")
    assert len(shown) == study.n_cell_items + 4 and len(set(shown)) == 1 and shown[0].startswith("1-")
    reference = shown[0]
    runner = CliRunner()
    forged = runner.invoke(main, ["survey", "delete", str(folder), "1-000000", "--reason", "asked by email"])
    assert forged.exit_code == 2 and "not an id this study showed" in forged.output
    result = runner.invoke(main, ["survey", "delete", str(folder), reference, "--reason", "asked by email",
                                  "--operator", "dr-x"])
    assert result.exit_code == 0, result.output
    assert f"{study.n_cell_items + 2} answers" in result.output
    document = json.loads(admin_get(url, "/admin/export.json"))
    assert [p["platform"]["PROLIFIC_PID"] for p in document["participants"]] == ["person-2"]
    assert {a["participant_id"] for a in document["answers"]} == {2}
    assert [w["participant_id"] for w in document["withdrawn"]] == [1]
    assert b"person-1" not in admin_get(url, "/admin/export.csv")
    scores = human_scores(load_results(folder), study.store)
    assert scores["participants"]["started"] == 1 and scores["participants"]["withdrawn"] == 1
    assert human_section(load_results(folder))["participants"]["started"] == 1
    assert session.request("GET", "/item")[:2] == (303, "/"), "the withdrawn participant's token opens nothing"
    db = sqlite3.connect(folder / SURVEY_FILE)
    try:  # the audit trail: the rows stay, the tombstone says who, when and why, and neither can be altered
        assert db.execute("SELECT COUNT(*) FROM answers WHERE participant_id = 1").fetchone()[0] == \
            study.n_cell_items + 2
        assert db.execute("SELECT participant_id, operator, reason FROM tombstones").fetchall() == \
            [(1, "dr-x", "asked by email")]
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM tombstones")
    finally:
        db.close()
    again = runner.invoke(main, ["survey", "delete", str(folder), "1", "--reason", "asked twice"])
    assert again.exit_code == 2 and "already withdrawn" in again.output
