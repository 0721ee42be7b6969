"""The survey app's sessions and forms on a real server on localhost: byte-safe comparisons, security headers on
error pages, one CSRF token per form, admin sessions that expire and end at sign-out and restart, single-use
consent, Secure cookies behind HTTPS, repeated crowd-platform ids left out of scores, the rate limits and trusted
proxies of ``survey serve`` and the README's proxy configuration."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import shlex
import shutil

import pytest
from click.testing import CliRunner

from trojanbench import load_results
from trojanbench.survey import human_scores
from trojanbench.cli import main
from trojanbench.survey.app import ADMIN_SESSION_SECONDS, DEFAULT_TRUSTED_PROXIES, create_app, serving
from trojanbench.survey.security import Limits
from trojanbench.survey.simulate import CSRF, HttpSession, simulate
from trojanbench.survey.study import Study

from test_readme import blocks, command_lines
from survey_results import ADMIN, GENEROUS, ManualClock, write_results
from test_survey_app import cookie_header, participant, raw

FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_results(tmp_path_factory.mktemp("survey-security") / "run")


@pytest.fixture
def study(results, tmp_path):
    study = Study.open(shutil.copytree(results, tmp_path / "run"), seed=3, clock=ManualClock())
    yield study
    study.close()


@pytest.fixture
def url(study):
    with serving(create_app(study, ADMIN, limits=GENEROUS)) as url:
        yield url


def assert_secured(headers: dict) -> None:
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"


def form_of(session: HttpSession, path: str, status: int = 200) -> str:
    code, _, page = session.request("GET", path)
    assert code == status
    return CSRF.search(page.decode()).group(1)


def signed_in(url: str) -> HttpSession:
    admin = HttpSession(url, retry_seconds=0)
    assert admin.request("POST", "/admin/login", {"csrf": form_of(admin, "/admin", 401), "token": ADMIN})[0] == 303
    return admin


def test_a_non_ascii_csrf_value_is_refused_with_403_and_security_headers(url):
    admin = signed_in(url)
    session, _, position = participant(url, "A")
    visitor = HttpSession(url, retry_seconds=0)
    form_of(visitor, "/")
    accented = b"csrf=%C3%A9t%C3%A9"
    for who, path, body in ((visitor, "/consent", accented + b"&consent=yes"),
                            (session, f"/item/{position}", accented + b"&choice=1"),
                            (admin, "/admin/logout", accented)):
        status, headers, page = raw(url, "POST", path, body, {**cookie_header(who), "Content-Type": FORM})
        assert status == 403, f"{path}: {status} {page[:80]}"
        assert_secured(headers)


def test_a_server_error_page_carries_the_security_headers(url, study):
    session, _, _ = participant(url, "A")
    study.store.db.close()  # the database is gone under the running server: every participant page fails
    status, headers, page = raw(url, "GET", "/item", headers=cookie_header(session))
    assert status == 500 and b"Traceback" not in page
    assert_secured(headers)


def test_every_open_form_stays_valid_consent_twice_and_the_admin_sign_in(url, study):
    browser = HttpSession(url, retry_seconds=0)
    first, second, third = (form_of(browser, f"/?PROLIFIC_PID={n}") for n in ("one", "two", "three"))
    sign_in = form_of(browser, "/admin", 401)
    assert browser.request("POST", "/consent", {"csrf": first, "consent": "yes", "PROLIFIC_PID": "one"})[0] == 303
    assert browser.request("POST", "/admin/login", {"csrf": sign_in, "token": ADMIN})[0] == 303
    assert browser.request("GET", "/admin")[0] == 200
    assert browser.request("POST", "/consent", {"csrf": second, "consent": "yes", "PROLIFIC_PID": "two"})[0] == 303
    assert [p.platform for p in study.store.participants()] == [{"PROLIFIC_PID": "one"}, {"PROLIFIC_PID": "two"}]
    stranger = HttpSession(url, retry_seconds=0)  # a form token is bound to the browser that was given it
    form_of(stranger, "/")
    assert stranger.request("POST", "/consent", {"csrf": third, "consent": "yes"})[0] == 403
    assert len(study.store.participants()) == 2


def test_a_researcher_who_piloted_the_study_gets_the_sign_in_form_at_admin(url):
    session, _, _ = participant(url, "pilot")
    status, _, page = session.request("GET", "/admin")
    assert status == 401 and 'name="token"' in page.decode()
    assert session.request("POST", "/admin/login", {"csrf": CSRF.search(page.decode()).group(1),
                                                    "token": ADMIN})[0] == 303
    assert session.request("GET", "/admin")[0] == 200
    assert session.request("GET", "/item")[0] == 200, "still a participant too"


def test_sign_out_and_a_restart_end_the_admin_session(url, study):
    admin = signed_in(url)
    cookie = cookie_header(admin)
    assert raw(url, "GET", "/admin/export.json", headers=cookie)[0] == 200
    status, _, page = admin.request("GET", "/admin")
    assert admin.request("POST", "/admin/logout", {"csrf": CSRF.search(page.decode()).group(1)})[0] == 303
    assert raw(url, "GET", "/admin/export.json", headers=cookie)[0] == 403, "signed out"
    status, _, page = raw(url, "GET", "/admin", headers=cookie)
    assert status == 401 and b'name="token"' in page, "a stale session gets the sign-in form"
    cookie = cookie_header(signed_in(url))
    with serving(create_app(study, ADMIN, limits=GENEROUS)) as restarted:
        assert raw(restarted, "GET", "/admin/export.json", headers=cookie)[0] == 403, "restarted"
        assert raw(restarted, "GET", "/admin/export.json", headers={"Authorization": f"Bearer {ADMIN}"})[0] == 200


def test_an_admin_session_expires(url, study):
    admin = HttpSession(url, retry_seconds=0)
    csrf = form_of(admin, "/admin", 401)
    status, headers, _ = raw(url, "POST", "/admin/login", f"csrf={csrf}&token={ADMIN}".encode(),
                             {**cookie_header(admin), "Content-Type": FORM})
    assert status == 303 and f"Max-Age={ADMIN_SESSION_SECONDS}" in headers["set-cookie"]
    cookie = {"Cookie": headers["set-cookie"].split(";")[0]}
    study.clock.now += ADMIN_SESSION_SECONDS - 1
    assert raw(url, "GET", "/admin/export.json", headers=cookie)[0] == 200
    study.clock.now += 2
    assert raw(url, "GET", "/admin/export.json", headers=cookie)[0] == 403


def test_cookies_are_secure_behind_https_and_the_favicon_is_no_content(url):
    status, headers, _ = raw(url, "GET", "/", headers={"X-Forwarded-Proto": "https"})
    assert status == 200 and "Secure" in headers["set-cookie"]
    assert "Secure" not in raw(url, "GET", "/")[1]["set-cookie"]
    status, headers, body = raw(url, "GET", "/favicon.ico")
    assert (status, body) == (204, b"")
    assert_secured({**headers, "cache-control": "no-store"})


@pytest.mark.slow
def test_a_repeated_platform_id_is_flagged_in_the_export_and_left_out_of_scores(url, study, caplog):
    caplog.set_level(logging.WARNING, logger="trojanbench.survey.study")
    for _ in range(2):  # the same two crowd ids (sim-0, sim-1) take the study twice
        report = simulate(url, study.results_dir, 2, noise=0.0, seed=0)
        assert report.failures == [] and report.completed == 2
    document = json.loads(raw(url, "GET", "/admin/export.json", headers={"Authorization": f"Bearer {ADMIN}"})[2])
    flags = {p["participant_id"]: (p["platform"]["PROLIFIC_PID"], p["repeat_of"], p["scored"])
             for p in document["participants"]}
    first = {pid: n for n, (pid, repeat, _) in flags.items() if repeat is None}
    assert sorted(first.values()) == [1, 2]
    assert {n: f for n, f in flags.items() if n > 2} == {n: (pid, first[pid], False) for n, (pid, _, _) in
                                                         flags.items() if n > 2}
    assert all(scored for n, (_, _, scored) in flags.items() if n <= 2)
    rows = list(csv.DictReader(io.StringIO(raw(url, "GET", "/admin/export.csv",
                                               headers={"Authorization": f"Bearer {ADMIN}"})[2].decode())))
    assert {row["participant_id"] for row in rows if row["repeat_of"]} == {"3", "4"}
    scores = human_scores(load_results(study.results_dir), study.store)
    assert scores["participants"]["repeated"] == 2 and scores["participants"]["scored"] == 2
    assert scores["n_answers"] == 2 * study.n_cell_items
    assert caplog.text.count("repeats an earlier session's PROLIFIC_PID") == 2, "noticed at consent"


def test_a_consent_form_is_single_use(url, study):
    visitor = HttpSession(url, retry_seconds=0)
    csrf = form_of(visitor, "/")
    cookie = cookie_header(visitor)
    assert visitor.request("POST", "/consent", {"csrf": csrf, "consent": "yes"})[0] == 303
    status, headers, _ = raw(url, "POST", "/consent", f"csrf={csrf}&consent=yes".encode(),
                             {**cookie, "Content-Type": FORM})
    assert status == 409 and "tb_participant" not in headers.get("set-cookie", "")
    assert len(study.store.participants()) == 1


def test_cli_serve_passes_its_rate_limits_and_trusted_proxies_to_the_server(results, tmp_path, monkeypatch):
    from trojanbench.survey import app as survey_app
    from trojanbench.survey.cli import serve

    calls = []
    monkeypatch.setattr(survey_app, "serve", lambda app, **options: calls.append((app, options)))
    folder = str(shutil.copytree(results, tmp_path / "run"))
    flags = ["--trusted-proxy", "10.0.0.5", "--trusted-proxy", "10.1.0.0/16", "--rate-per-participant", "30",
             "--rate-per-address", "700", "--image-rate-per-participant", "90", "--image-rate-per-address", "999"]
    for args in ([], flags):
        result = CliRunner().invoke(main, ["survey", "serve", folder, "--admin-token", ADMIN, *args])
        assert result.exit_code == 0, result.output
    (default_app, default), (app, given) = calls
    assert default["trusted_proxies"] == DEFAULT_TRUSTED_PROXIES and given["trusted_proxies"] == ("10.0.0.5",
                                                                                                   "10.1.0.0/16")
    assert default_app.user_middleware[0].kwargs["limits"] == Limits()
    assert app.user_middleware[0].kwargs["limits"] == Limits(per_participant_per_minute=30, per_address_per_minute=700,
                                                             images_per_participant_per_minute=90,
                                                             images_per_address_per_minute=999)
    helps = {param.name: param.help for param in serve.params}
    for name, field in (("rate_per_participant", "per_participant_per_minute"),
                        ("rate_per_address", "per_address_per_minute"),
                        ("image_rate_per_participant", "images_per_participant_per_minute"),
                        ("image_rate_per_address", "images_per_address_per_minute")):
        assert f"(default: {getattr(Limits(), field)}" in helps[name], name


def test_the_readme_proxy_configuration_points_at_the_serve_command_it_shows():
    """The Caddyfile of "Running a real study" (no Caddy here: what can be checked without it)."""
    [caddyfile] = blocks("caddy")
    lines = [line.strip() for line in caddyfile.splitlines() if line.strip()]
    assert caddyfile.count("{") == caddyfile.count("}") == 1 and lines[0].endswith("{") and lines[-1] == "}"
    site = lines[0].removesuffix("{").strip()
    assert re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", site), "a host name: Caddy then serves HTTPS for it"
    [upstream] = [line.split()[1] for line in lines if line.startswith("reverse_proxy")]
    [serve_line] = [line for line in command_lines() if line.startswith("trojanbench survey serve")
                    and "--trusted-proxy" in line]
    words = shlex.split(serve_line)
    option = {words[i]: words[i + 1] for i in range(len(words) - 1) if words[i].startswith("--")}
    assert upstream == f"{option['--host']}:{option['--port']}"
    assert option["--trusted-proxy"] == option["--host"], "Caddy on the same machine connects from loopback"
