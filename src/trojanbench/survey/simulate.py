"""Simulated respondents: scripted participants that take a study over HTTP, page by page, as a person would.

Each reads the consent page, agrees, then for every item fetches the picture and the 8 option pictures and
answers. It recognises a tool's picture by its bytes and answers as an automatic judge would, drawing an
option from the judge's probabilities, except that with probability ``noise`` it picks uniformly at random.
A picture no cell has (an attention check) is answered with the option that matches its first image; an
inattentive participant answers everything at random. So the whole pipeline runs without people.

:func:`simulate_study` serves a simulation of a folder's study (``survey-simulation.sqlite``, see
:meth:`~trojanbench.survey.study.Study.open_simulation`) to them, so scripted answers never mix with people's;
:func:`simulate` runs them against any server it is given (a test bed: pointed at a study of people, their
answers land in it like a person's).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import dataclasses
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode, urlsplit

import numpy as np

from ..errors import ConfigError
from ..tasks.rediscovery.store import RediscoveryStore
from .pictures import cell_png, option_png
from .study import SHOWN_ROLES

log = logging.getLogger(__name__)

CSRF = re.compile(r'name="csrf" value="([0-9a-f.]+)"')
ACTION = re.compile(r'action="/item/([0-9]+)"')
CHOICES = re.compile(r'name="choice" value="([0-9]+)"')
CODE = re.compile(r'<div class="code">([^<]+)</div>')


@dataclass(frozen=True)
class Acknowledged:
    """An answer the server acknowledged (303 after the commit): who, at which position, which displayed option."""

    label: str
    position: int
    choice: int


@dataclass
class SimulationReport:
    participants: int
    completed: int = 0
    answers: list[Acknowledged] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    retries: int = 0
    seconds: float = 0.0
    codes: dict[str, str] = field(default_factory=dict)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class AnswerKey:
    """What simulated participants know: each shown cell's picture (by digest) with the question's options and a
    judge's probabilities over them (several cells can show the same picture: an oracle's renders under
    different seeds), and each option's picture (by digest) with its name."""

    def __init__(self, results_dir: str | Path, judge: str):
        store = RediscoveryStore(results_dir, create=False)
        try:
            scores = {s["key"]: s["probabilities"] for s in store.scores() if s["judge"] == judge}
            questions = store.questions()
            self.cells: dict[str, list[tuple[list[str], np.ndarray]]] = {}
            self.options: dict[str, str] = {}
            for row in store.cells():
                question = questions.get((row.trojan, row.seed))
                if row.status != "ok" or not row.image_file or row.role not in SHOWN_ROLES or row.key not in scores \
                        or question is None:
                    continue
                self.cells.setdefault(_digest(cell_png(store, row)), []).append(
                    (question["options"], np.asarray(scores[row.key])))
                for option in question["options"]:
                    self.options[_digest(option_png(option, question["kind"]))] = option
        finally:
            store.close()
        if not self.cells:
            raise ValueError(f"No cell of {str(results_dir)!r} has scores from judge {judge!r}.")


class HttpSession:
    """One participant's HTTP conversation: keeps cookies, retries on 429 and on a refused connection until
    ``retry_seconds`` have passed (a request whose connection broke is sent again: answers are idempotent)."""

    def __init__(self, base_url: str, retry_seconds: float):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.retry_seconds = retry_seconds
        self.cookies: dict[str, str] = {}
        self.retries = 0

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, str, bytes]:
        deadline = time.monotonic() + self.retry_seconds
        while True:
            try:
                status, location, data = self._once(method, path, form)
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise
                self.retries += 1
                time.sleep(0.2)
                continue
            if status == 429 and time.monotonic() < deadline:
                self.retries += 1
                time.sleep(0.5)
                continue
            return status, location, data

    def _once(self, method: str, path: str, form: dict | None) -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
            body = None
            if form is not None:
                body = urlencode(form)
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            data = response.read()
            for header in response.headers.get_all("set-cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    if morsel["max-age"] == "0":
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            return response.status, response.headers.get("location", ""), data
        finally:
            connection.close()


def _expect(status: int, wanted: int, what: str) -> None:
    if status != wanted:
        raise RuntimeError(f"{what}: HTTP {status}, expected {wanted}")


def _matching_option(picture: bytes, options: list[bytes]) -> int:
    """The option closest (mean absolute difference) to the picture's first image."""
    from PIL import Image

    shown = np.asarray(Image.open(io.BytesIO(picture)).convert("RGB"), dtype=float)
    pictures = [np.asarray(Image.open(io.BytesIO(o)).convert("RGB"), dtype=float) for o in options]
    return int(np.argmin([np.abs(shown[:p.shape[0], :p.shape[1]] - p).mean() for p in pictures]))


def join_study(session: HttpSession, platform: dict[str, str]) -> None:
    """Open the consent page (crowd-platform ids in the query, as a platform's link carries them) and agree."""
    status, _, page = session.request("GET", "/?" + urlencode(platform))
    _expect(status, 200, "consent page")
    status, _, _ = session.request("POST", "/consent", {"csrf": CSRF.search(page.decode()).group(1),
                                                        "consent": "yes", **platform})
    _expect(status, 303, "consent")


def take_study(base_url: str, key: AnswerKey, label: str, *, rng: np.random.Generator, noise: float = 0.3,
               attentive: bool = True, retry_seconds: float = 30.0, think_seconds: float = 0.0,
               on_answer: Callable[[Acknowledged], None] | None = None) -> tuple[list[Acknowledged], str, int]:
    """One scripted participant from consent to completion code; returns its acknowledged answers, the code
    and how many requests it had to retry."""
    session = HttpSession(base_url, retry_seconds)
    join_study(session, {"PROLIFIC_PID": label, "STUDY_ID": "simulation", "SESSION_ID": f"{label}-session"})
    acknowledged = []
    while True:
        status, location, page = session.request("GET", "/item")
        if status == 303 and location.endswith("/done"):
            break
        _expect(status, 200, "item page")
        html = page.decode()
        position = int(ACTION.search(html).group(1))
        choices = [int(c) for c in CHOICES.findall(html)]
        picture = session.request("GET", f"/item/{position}/picture.png")[2]
        options = [session.request("GET", f"/item/{position}/option/{c}.png")[2] for c in choices]
        choice = _decide(key, picture, options, rng, noise, attentive)
        time.sleep(think_seconds)
        status, _, _ = session.request("POST", f"/item/{position}", {"csrf": CSRF.search(html).group(1),
                                                                     "choice": str(choice)})
        _expect(status, 303, f"answer at position {position}")
        acknowledged.append(Acknowledged(label, position, choice))
        if on_answer:
            on_answer(acknowledged[-1])
    status, _, page = session.request("GET", "/done")
    _expect(status, 200, "completion page")
    return acknowledged, CODE.search(page.decode()).group(1).strip(), session.retries


def _decide(key: AnswerKey, picture: bytes, options: list[bytes], rng: np.random.Generator, noise: float,
            attentive: bool) -> int:
    names = [key.options.get(_digest(o)) for o in options]
    known = [(question, p) for question, p in key.cells.get(_digest(picture), []) if set(question) == set(names)]
    if not attentive or (known and rng.random() < noise):
        return int(rng.integers(len(options)))
    if not known:
        return _matching_option(picture, options)
    question_options, probabilities = known[0]
    weights = np.array([probabilities[question_options.index(name)] for name in names]) + 1e-12
    return int(rng.choice(len(options), p=weights / weights.sum()))


def simulate(base_url: str, results_dir: str | Path, n_participants: int, *, judge: str = "concept",
             noise: float = 0.3, inattentive: float = 0.0, workers: int | None = None, seed: int = 0,
             retry_seconds: float = 30.0, think_seconds: float = 0.0,
             on_answer: Callable[[Acknowledged], None] | None = None) -> SimulationReport:
    """Run ``n_participants`` scripted participants against the study served at ``base_url``, ``workers`` at
    a time (default: all at once). Participant ``i`` is labelled ``sim-i`` (its PROLIFIC_PID) and draws its
    answers from ``seed`` and ``i``; a fraction ``inattentive`` of them answer at random."""
    key = AnswerKey(results_dir, judge)
    report = SimulationReport(n_participants)
    started = time.monotonic()

    def one(index: int):
        rng = np.random.default_rng([seed, index])
        attentive = rng.random() >= inattentive
        return take_study(base_url, key, f"sim-{index}", rng=rng, noise=noise, attentive=attentive,
                          retry_seconds=retry_seconds, think_seconds=think_seconds, on_answer=on_answer)

    with ThreadPoolExecutor(max_workers=workers or n_participants) as pool:
        futures = {index: pool.submit(one, index) for index in range(n_participants)}
        for index, future in futures.items():
            try:
                answers, code, retries = future.result()
            except Exception as exc:  # noqa: BLE001 - a failed participant is a finding to report, not a crash
                log.warning("simulated participant %d failed: %s", index, exc)
                report.failures.append(f"sim-{index}: {exc}")
                continue
            report.completed += 1
            report.answers += answers
            report.codes[f"sim-{index}"] = code
            report.retries += retries
    report.seconds = time.monotonic() - started
    return report


def simulate_study(results_dir: str | Path, n_participants: int, *, judge: str = "concept", noise: float = 0.3,
                   inattentive: float = 0.0, seed: int = 0) -> tuple[SimulationReport, dict]:
    """Serve a fresh simulation of the study of ``results_dir`` on a local port, run :func:`simulate` against it and
    score the scripted answers; returns the report and :func:`~trojanbench.survey.scores.human_scores` of the
    simulation. The people's study (``survey.sqlite``) is only read, for its design."""
    from ..tasks.rediscovery.results import Results
    from .app import create_app, serving
    from .scores import human_scores
    from .security import Limits, new_token
    from .study import Study

    results = Results(results_dir)
    if judge not in results.judges:
        raise ConfigError(f"Judge {judge!r} scored no cell in {str(results_dir)!r}. Judges there: "
                          f"{', '.join(results.judges)}.")
    unlimited = Limits(**{f.name: 10 ** 9 for f in dataclasses.fields(Limits) if f.name.endswith("_per_minute")})
    study = Study.open_simulation(results_dir)
    try:
        with serving(create_app(study, new_token(), limits=unlimited)) as base_url:
            report = simulate(base_url, results_dir, n_participants, judge=judge, noise=noise,
                              inattentive=inattentive, seed=seed)
        return report, human_scores(results, study.store)
    finally:
        study.close()
