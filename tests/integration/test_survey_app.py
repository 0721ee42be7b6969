"""The survey app on a real server on localhost: simulated participants, isolation between participants,
admin credentials, malformed and oversized requests, rate limits, exports, the CLI and the report section."""

from __future__ import annotations

import csv
import http.client
import importlib
import io
import json
import re
import shutil
import socket
import sys
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from trojanbench.cli import main
from trojanbench.errors import MissingExtraError
from trojanbench.report import write_report
from trojanbench import load_results
from trojanbench.survey import human_scores
from trojanbench.survey.app import create_app, serving
from trojanbench.survey.pictures import option_png
from trojanbench.survey.security import Limits
from trojanbench.survey.simulate import CSRF, HttpSession, join_study, simulate
from trojanbench.survey.study import Study

from survey_results import ADMIN, write_results


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_results(tmp_path_factory.mktemp("survey-app") / "run", seeds=(0, 1))


def raw(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None
        ) -> tuple[int, dict, bytes]:
    """One request exactly as given (no cookie handling, no retries)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def participant(url: str, label: str) -> tuple[HttpSession, str, int]:
    """A participant who agreed and opened their first item: (session, the item page's CSRF field, position)."""
    session = HttpSession(url, retry_seconds=0)
    join_study(session, {"PROLIFIC_PID": label})
    status, _, page = session.request("GET", "/item")
    assert status == 200
    html = page.decode()
    return session, CSRF.search(html).group(1), int(re.search(r'action="/item/(\d+)"', html).group(1))


def cookie_header(session: HttpSession) -> dict:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in session.cookies.items())}


def admin_get(url: str, path: str) -> bytes:
    status, _, body = raw(url, "GET", path, headers={"Authorization": f"Bearer {ADMIN}"})
    assert status == 200
    return body


@pytest.mark.slow
def test_twenty_simulated_participants_answer_concurrently_and_every_acknowledged_answer_is_exported(served):
    url, study, _ = served
    report = simulate(url, study.results_dir, 20, inattentive=0.2, seed=0)
    assert report.failures == [] and report.completed == 20
    n_items = study.n_cell_items + 2
    assert len(report.answers) == 20 * n_items
    document = json.loads(admin_get(url, "/admin/export.json"))
    exported = {(a["PROLIFIC_PID"], a["position"], a["choice"]) for a in document["answers"]}
    assert {(a.label, a.position, a.choice) for a in report.answers} == exported
    rows = list(csv.DictReader(io.StringIO(admin_get(url, "/admin/export.csv").decode())))
    assert len(rows) == len(document["answers"]) == 20 * n_items
    participants = document["participants"]
    assert len(participants) == 20 and all(p["completed"] for p in participants)
    assert {p["platform"]["PROLIFIC_PID"] for p in participants} == {f"sim-{i}" for i in range(20)}
    assert {p["completion_code"] for p in participants} == set(report.codes.values())
    excluded = {p["participant_id"] for p in participants if p["excluded"]}
    assert excluded, "the inattentive fifth fails an attention check (and stays in the export)"
    wrong_checks = {a["participant_id"] for a in document["answers"] if a["item_kind"] == "attention"
                    and not a["correct"]}
    assert excluded == wrong_checks
    fill = study.fill().values()
    assert max(fill) - min(fill) <= 1, "balanced across (tool, trojan) cells"
    for row in rows:  # the stored permutation explains the option recorded
        options_shown = row["options_shown"].split(" ")
        assert options_shown[int(row["choice"])] == row["option"]
        assert (row["option"] == row["truth"]) == (row["correct"] == "True")


def test_pictures_are_served_for_the_participants_own_item_only(served):
    url, study, _ = served
    session, _, position = participant(url, "A")
    own = study.store.assignments()[0]
    item = study.items[own.item_id]
    assert session.request("GET", f"/item/{position}/picture.png")[2] == study.picture(own.item_id)
    for choice in range(8):
        expected = option_png(item.question["options"][own.permutation[choice]], item.question["kind"])
        assert session.request("GET", f"/item/{position}/option/{choice}.png")[2] == expected
    assert session.request("GET", f"/item/{position + 1}/picture.png")[0] == 404
    assert raw(url, "GET", f"/item/{position}/picture.png")[0] == 403  # no token, no picture


def test_participant_a_cannot_read_or_write_bs_answers(served):
    url, study, _ = served
    a, a_csrf, a_position = participant(url, "A")
    b, b_csrf, b_position = participant(url, "B")
    assert b.request("POST", f"/item/{b_position}", {"csrf": b_csrf, "choice": "1"})[0] == 303
    b_answers = study.store.answers(2)
    b.request("GET", "/item")  # B's second item exists now
    # A signs with B's form token: refused; A's own position is A's own item, whatever B has
    assert a.request("POST", f"/item/{a_position}", {"csrf": b_csrf, "choice": "4"})[0] == 403
    assert a.request("POST", "/item/1", {"csrf": a_csrf, "choice": "4"})[0] == 404
    assert a.request("GET", "/item/1/picture.png")[0] == 404
    assert a.request("POST", f"/item/{a_position}", {"csrf": a_csrf, "choice": "4"})[0] == 303
    assert study.store.answers(2) == b_answers
    assert [x["choice"] for x in study.store.answers(1)] == [4]
    # nobody else's data on A's pages; a forged token reaches nothing
    assert a.request("GET", "/done")[0] == 303
    assert a.request("GET", "/admin/export.json")[0] == 403
    forged = {"Cookie": "tb_participant=" + "x" * 43}
    assert raw(url, "POST", "/item/0", b"choice=1&csrf=00", {**forged, "Content-Type":
                                                             "application/x-www-form-urlencoded"})[0] == 403
    assert raw(url, "GET", "/item/0/picture.png", headers=forged)[0] == 403
    assert raw(url, "GET", "/item", headers=forged)[0] == 303


def test_admin_routes_refuse_participant_tokens(served):
    url, _, _ = served
    session, _, _ = participant(url, "A")
    token = session.cookies["tb_participant"]
    status, _, page = raw(url, "GET", "/admin", headers=cookie_header(session))
    assert status == 401 and b'name="token"' in page, "a participant's browser gets the sign-in form, nothing more"
    for path in ("/admin", "/admin/export.csv", "/admin/export.json"):
        if path != "/admin":
            assert raw(url, "GET", path, headers=cookie_header(session))[0] == 403
        assert raw(url, "GET", path, headers={"Authorization": f"Bearer {token}"})[0] == 403
        assert raw(url, "GET", path, headers={"Authorization": f"Basic {ADMIN}"})[0] == 403
        assert raw(url, "GET", path)[0] == 401
        assert raw(url, "GET", path, headers={"Authorization": f"Bearer {ADMIN}"})[0] == 200
    assert session.request("POST", "/admin/logout", {"csrf": "0"})[0] == 403
    # the sign-in form: a wrong token is refused, the right one opens the summary; no page shows the token
    admin = HttpSession(url, retry_seconds=0)
    status, _, page = admin.request("GET", "/admin")
    assert status == 401 and ADMIN not in page.decode()
    csrf = CSRF.search(page.decode()).group(1)
    assert admin.request("POST", "/admin/login", {"csrf": csrf, "token": token})[0] == 403
    assert admin.request("POST", "/admin/login", {"csrf": csrf, "token": ADMIN})[0] == 303
    status, _, page = admin.request("GET", "/admin")
    assert status == 200 and "live summary" in page.decode() and ADMIN not in page.decode()
    for path in ("/", "/instructions", "/item", "/admin"):
        assert ADMIN not in session.request("GET", path)[2].decode()


def test_malformed_and_oversized_requests_get_4xx_not_500(served):
    url, _, _ = served
    session, csrf, position = participant(url, "A")
    form = {**cookie_header(session), "Content-Type": "application/x-www-form-urlencoded"}
    answer = f"/item/{position}"
    cases = [
        ("POST", answer, b"choice=1&csrf=" + b"a" * 1_000_000, form, 413),
        ("POST", answer, None, {**form, "Content-Length": "12abc"}, 400),
        ("POST", answer, f"csrf={csrf}&choice=1".encode(), {**cookie_header(session),
                                                              "Content-Type": "application/json"}, 415),
        ("POST", answer, b"\xff\xfe\x00choice", form, 400),
        ("POST", answer, b"%%%", form, 400),
        ("POST", answer, f"csrf={csrf}&choice=1&choice=2".encode(), form, 400),
        ("POST", answer, f"csrf={csrf}&choice=1&admin=1".encode(), form, 400),
        ("POST", answer, f"csrf={csrf}&choice=A".encode(), form, 400),
        ("POST", answer, f"csrf={csrf}&choice=9".encode(), form, 400),   # not among the 8 options shown
        ("POST", answer, f"csrf={csrf}&choice=-1".encode(), form, 400),
        ("POST", answer, f"csrf={csrf}&choice=".encode(), form, 400),
        ("POST", answer, b"choice=1", form, 403),                         # no CSRF field
        ("POST", "/item/99999999999999999999999", f"csrf={csrf}&choice=1".encode(), form, 404),
        ("PUT", answer, b"", form, 405),
        ("GET", "/item/abc/picture.png", None, cookie_header(session), 404),
        ("GET", f"/item/{position}/option/8.png", None, cookie_header(session), 404),
        ("GET", "/?PROLIFIC_PID=%3Cscript%3E", None, {}, 400),
        ("GET", "/?PROLIFIC_PID=" + "a" * 5000, None, {}, 414),
        ("GET", "/nowhere", None, {}, 404),
        ("POST", "/consent", b"consent=yes", {"Content-Type": "application/x-www-form-urlencoded"}, 403),
        ("GET", "/item", None, {"Cookie": 'tb_participant="\\x00; ;;=='}, 303),
    ]
    for method, path, body, headers, expected in cases:
        status = raw(url, method, path, body, headers)[0]
        assert status == expected, f"{method} {path[:40]} {body[:40] if body else body}: {status}, not {expected}"
    # a body streamed without Content-Length is cut at the limit too
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        head = (f"POST {answer} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nCookie: tb_participant="
                f"{session.cookies['tb_participant']}\r\n\r\n").encode()
        chunk = b"a" * 8192
        sock.sendall(head + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n")
        assert sock.recv(100).split(b" ")[1] == b"413"
    status, _, page = raw(url, "GET", "/healthz")
    assert (status, page) == (200, b"ok")
    assert session.request("POST", answer, {"csrf": csrf, "choice": "1"})[0] == 303, "the participant goes on"


def test_a_resubmitted_answer_is_idempotent_and_a_changed_one_refused(served):
    url, study, _ = served
    session, csrf, position = participant(url, "A")
    assert session.request("POST", f"/item/{position}", {"csrf": csrf, "choice": "2"})[0] == 303
    assert session.request("POST", f"/item/{position}", {"csrf": csrf, "choice": "2"})[0] == 303
    status, _, page = session.request("POST", f"/item/{position}", {"csrf": csrf, "choice": "3"})
    assert status == 409 and "cannot be changed" in page.decode()
    assert [a["choice"] for a in study.store.answers()] == [2]


def test_pages_carry_security_headers_and_cookies_are_http_only(served):
    url, _, _ = served
    status, headers, _ = raw(url, "GET", "/")
    assert status == 200
    assert "default-src 'none'" in headers["content-security-policy"] and "script-src" not in \
        headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    # the form cookie is lax: a crowd platform's link (another site) opens the study with it
    assert "HttpOnly" in headers["set-cookie"] and "SameSite=lax" in headers["set-cookie"]


def test_rate_limits_answer_429_with_retry_after(results, tmp_path):
    study = Study.open(shutil.copytree(results, tmp_path / "run"))
    with serving(create_app(study, ADMIN, limits=Limits(per_address_per_minute=20))) as url:
        statuses = [raw(url, "GET", "/healthz") for _ in range(8)]
    study.close()
    assert [s for s, _, _ in statuses[:5]] == [200] * 5  # a burst of a quarter of a minute's rate
    status, headers, _ = statuses[-1]
    assert status == 429 and int(headers["retry-after"]) >= 1


def test_cli_plan_prints_participants_per_cell_and_refuses_bad_input():
    result = CliRunner().invoke(main, ["survey", "plan", "--accuracy", "0.4", "--difference", "0.2", "--cells", "10",
                                       "--items-per-participant", "5"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("97 participants per cell detect 0.400 vs 0.600")
    assert "10 cells x 97 = 970 answers: at least 194 participants" in result.output
    gap = CliRunner().invoke(main, ["survey", "plan", "--judge-rate", "0.5", "--difference", "0.1"])
    assert gap.exit_code == 0 and gap.output.startswith("194 answers in all (pooled over the cells) detect people at "
                                                        "0.600 against a judge at 0.500"), gap.output
    assert "at least 17 participants answering 12 cell items each" in gap.output
    bad = CliRunner().invoke(main, ["survey", "plan", "--difference", "0.9"])
    assert bad.exit_code == 2 and "accuracy + difference in (0, 1)" in bad.output
    assert CliRunner().invoke(main, ["survey", "plan", "--difference", "x"]).exit_code == 2


def test_cli_serve_refuses_a_folder_without_results_and_a_short_admin_token(tmp_path, results):
    result = CliRunner().invoke(main, ["survey", "serve", str(tmp_path)])
    assert result.exit_code == 2 and "holds no results" in result.output
    folder = shutil.copytree(results, tmp_path / "run")
    result = CliRunner().invoke(main, ["survey", "serve", str(folder), "--admin-token", "short"])
    assert result.exit_code == 2 and "at least 16 characters" in result.output


@pytest.mark.slow
def test_cli_simulate_runs_scripted_participants_and_reports_agreement(results, tmp_path):
    folder = shutil.copytree(results, tmp_path / "run")
    result = CliRunner().invoke(main, ["survey", "simulate", str(folder), "--participants", "4", "--noise", "0"])
    assert result.exit_code == 0, result.output
    assert "4 participants, 4 completed, 24 answers acknowledged, 0 failed" in result.output
    assert "people vs concept: Spearman over tools" in result.output


def test_a_missing_extra_names_the_extra_to_install(monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m.startswith(("starlette", "trojanbench.survey.app",
                                                         "trojanbench.survey.security"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "starlette", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'trojanbench\[survey\]'"):
        importlib.import_module("trojanbench.survey.app")
    result = CliRunner().invoke(main, ["survey", "serve", str(tmp_path)])
    assert result.exit_code == 2 and "trojanbench[survey]" in result.output


@pytest.mark.slow
def test_the_report_gains_a_humans_section_only_when_answers_exist(served, results, tmp_path):
    url, study, folder = served
    plain = write_report(shutil.copytree(results, tmp_path / "plain")).read_text()
    assert 'id="humans"' not in plain
    simulate(url, folder, 12, noise=0.0, seed=1)
    page = write_report(folder).read_text()
    assert 'id="humans"' in page
    scores = human_scores(load_results(folder), study.store)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert scores["n_units"] > 0
    for row in scores["methods"]:
        role = scores["roles"][row["group"]]
        assert f"{row['group']} {role} {row['n']} {row['accuracy']:.3f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]" \
            in text
    assert f"Krippendorff's alpha (nominal) {scores['krippendorff_alpha']:.2f}" in text
    for judge, agreement in scores["agreement"].items():  # calibration: people's accuracy against the judge's p(true)
        gaps = [abs(r["accuracy"] - r["judges"][judge]["p_true"]) for r in scores["methods"]]
        assert agreement["gap_tools"] == pytest.approx(sum(gaps) / len(gaps))
        assert 0 <= agreement["gap_cells"] <= 1
        assert (f"Against people (the survey, below ): Spearman over tools {agreement['spearman_tools']:.2f}, over "
                f"cells {agreement['spearman_cells']:.2f}; calibration gap {agreement['gap_tools']:.3f}") in text
