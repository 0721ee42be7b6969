"""The survey server under load on localhost, with its default limits: 50 participants behind one address at
people's pace are never refused, one client hammering is; the address behind a trusted proxy is the one counted;
``survey backup`` copies the database while participants answer, and ``survey export`` reads it.

People's pace (a page every 5 to 15 s) is played faster: the rate limits run on a clock ``SPEED`` times faster
than the wall clock and every pause is ``SPEED`` times shorter, so the limits see what they would see at
people's pace while the test takes seconds.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import shutil
import sqlite3
import threading
import time
from collections import Counter

import pytest
from click.testing import CliRunner

from trojanbench.cli import main
from trojanbench.survey.app import create_app, serving
from trojanbench.survey.security import Limits
from trojanbench.survey.simulate import CSRF, HttpSession, join_study
from trojanbench.survey.study import Study

from survey_results import ADMIN, write_results
from test_survey_app import raw

SPEED = 10
PARTICIPANTS = 50
IMAGE = re.compile(r'(?:src|href)="(/[^"]+\.(?:png|css))"')
CHOICE = re.compile(r'name="choice" value="(\d+)"')


def fast_clock(start=time.monotonic()):
    return start + (time.monotonic() - start) * SPEED


def pause(rng: random.Random) -> None:
    """A person reading a page: 5 to 15 s, played SPEED times faster."""
    time.sleep(rng.uniform(5, 15) / SPEED)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_results(tmp_path_factory.mktemp("survey-load") / "run")


@pytest.fixture
def study(results, tmp_path):
    study = Study.open(shutil.copytree(results, tmp_path / "run"), seed=5)
    yield study
    study.close()


def take_study(url: str, label: str, statuses: Counter, lock: threading.Lock) -> bool:
    """One person in a browser: each page with its stylesheet and pictures, a pause to read, the answer;
    every response is counted (no retries). True once the completion code is shown."""
    rng, session = random.Random(label), HttpSession(url, retry_seconds=0)

    def get(path: str, form: dict | None = None) -> tuple[int, str, bytes]:
        response = session.request("POST" if form is not None else "GET", path, form)
        with lock:
            statuses[response[0]] += 1
        return response

    def page(path: str) -> str:
        status, _, body = get(path)
        html = body.decode()
        for asset in IMAGE.findall(html):
            get(asset)
        pause(rng)
        return html if status == 200 else ""

    html = page(f"/?PROLIFIC_PID={label}")
    status, _, _ = get("/consent", {"csrf": CSRF.search(html).group(1), "consent": "yes", "PROLIFIC_PID": label})
    page("/instructions")
    while True:
        html = page("/item")
        form = re.search(r'action="(/item/\d+)"', html)
        if form is None:
            return get("/done")[0] == 200
        get(form.group(1), {"csrf": CSRF.search(html).group(1), "choice": rng.choice(CHOICE.findall(html))})


def test_fifty_participants_behind_one_address_at_peoples_pace_are_never_refused(study):
    statuses, lock, done = Counter(), threading.Lock(), []
    with serving(create_app(study, ADMIN, rate_clock=fast_clock)) as url:
        started = time.monotonic()
        threads = [threading.Thread(target=lambda n=n: done.append(take_study(url, f"p{n}", statuses, lock)))
                   for n in range(PARTICIPANTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.monotonic() - started
    print(f"{sum(statuses.values())} responses {dict(statuses)} in {seconds:.1f} s")
    assert statuses[429] == 0, dict(statuses)
    assert done == [True] * PARTICIPANTS
    assert len(study.store.answers()) == PARTICIPANTS * (study.n_cell_items + 2)


def test_one_client_hammering_is_refused_with_a_page_to_try_again(study):
    with serving(create_app(study, ADMIN)) as url:
        session = HttpSession(url, retry_seconds=0)
        join_study(session, {"PROLIFIC_PID": "greedy"})
        statuses = [session.request("GET", "/item")[0] for _ in range(Limits().per_participant_per_minute)]
        cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in session.cookies.items())}
        status, headers, body = raw(url, "GET", "/item", headers=cookie)
        others = HttpSession(url, retry_seconds=0)
        join_study(others, {"PROLIFIC_PID": "polite"})  # someone else on the same address
        polite = others.request("GET", "/item")[0]
    assert statuses.count(429) > 0 and statuses[0] == 200
    assert status == 429 and int(headers["retry-after"]) >= 1 and headers["content-type"].startswith("text/html")
    assert b'<a href="/item">Try again</a>' in body
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert polite == 200


def test_the_address_behind_a_trusted_proxy_is_the_one_limited(study):
    limits = Limits(per_address_per_minute=8)  # a burst of 2
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    with serving(create_app(study, ADMIN, limits=limits)) as url:  # the default: a proxy on 127.0.0.1 is trusted
        first = [raw(url, "GET", "/healthz", headers=forwarded)[0] for _ in range(3)]
        other = raw(url, "GET", "/healthz", headers={"X-Forwarded-For": "203.0.113.8"})[0]
    with serving(create_app(study, ADMIN, limits=limits), trusted_proxies=()) as url:  # no proxy trusted
        spoofed = [raw(url, "GET", "/healthz", headers={"X-Forwarded-For": f"198.51.100.{n}"})[0] for n in range(3)]
    assert first == [200, 200, 429] and other == 200
    assert spoofed == [200, 200, 429], "X-Forwarded-For from an untrusted client changes nothing"


def test_a_backup_taken_while_participants_answer_is_consistent_and_exports_match(study, tmp_path):
    statuses, lock, done, backups = Counter(), threading.Lock(), [], []
    with serving(create_app(study, ADMIN, rate_clock=fast_clock)) as url:
        threads = [threading.Thread(target=lambda n=n: done.append(take_study(url, f"b{n}", statuses, lock)))
                   for n in range(10)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            out = tmp_path / "backups" / f"{len(backups)}.sqlite"  # a folder made by the first backup
            result = CliRunner().invoke(main, ["survey", "backup", str(study.results_dir), str(out)])
            assert result.exit_code == 0, result.output
            backups.append(out)
        for thread in threads:
            thread.join()
        final = tmp_path / "final.sqlite"
        assert CliRunner().invoke(main, ["survey", "backup", str(study.results_dir), str(final)]).exit_code == 0
        exported = CliRunner().invoke(main, ["survey", "export", str(study.results_dir), "--format", "json"])
    assert done == [True] * 10 and statuses[429] == 0
    counts = []
    for out in [*backups, final]:
        db = sqlite3.connect(out)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        counts.append(db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
        db.close()
    assert len(backups) >= 2 and counts == sorted(counts), counts
    assert counts[-1] == len(study.store.answers()) == 10 * (study.n_cell_items + 2)
    document = json.loads(exported.output)
    assert len(document["answers"]) == counts[-1] and len(document["participants"]) == 10
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(final, copy / "survey.sqlite")
    out = tmp_path / "answers.csv"
    result = CliRunner().invoke(main, ["survey", "export", str(copy), "--format", "csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert sorted(int(row["answer_id"]) for row in rows) == sorted(a["answer_id"] for a in document["answers"])


def test_backup_and_export_refuse_a_folder_without_a_study(tmp_path):
    for args in (["backup", str(tmp_path), str(tmp_path / "b.sqlite")], ["export", str(tmp_path)]):
        result = CliRunner().invoke(main, ["survey", *args])
        assert result.exit_code != 0 and "No study database" in result.output, result.output
    assert not (tmp_path / "survey.sqlite").exists()
