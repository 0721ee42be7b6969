"""The survey web app: Starlette, server-rendered HTML (Jinja2), no JavaScript.

Participant pages: consent (crowd-platform ids in the query are carried along and recorded), instructions,
one page per item, and the completion code once the last answer is committed. A participant's token lives
in an HttpOnly cookie and scopes every read and write: pictures are served only for the participant's own
items, answers only for their own positions. Admin pages (live summary, CSV/JSON export) need the admin token,
as ``Authorization: Bearer`` or through the sign-in form, whose session ends at sign-out, after
:data:`ADMIN_SESSION_SECONDS` or when the server restarts; the token never appears in any page.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qsl

from ..errors import ConfigError, SurveyError, require_extra
from .security import (ADMIN_COOKIE, FORM_COOKIE, PARTICIPANT_COOKIE, AdminSessions, Guard, Limits, form_nonce,
                       form_token, new_token, same_token, sign, token_digest, verify, with_security_headers)

require_extra("starlette", "survey", "The survey app")

import jinja2  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from .export import export_csv, export_json  # noqa: E402
from .scores import human_scores  # noqa: E402
from .store import Participant  # noqa: E402
from .study import ATTENTION_CHECKS, Study  # noqa: E402

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
LETTERS = "ABCDEFGH"
PLATFORM_FIELDS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
PLATFORM_VALUE = re.compile(r"[A-Za-z0-9_-]{1,64}")
CHOICE_VALUE = re.compile(r"[0-9]{1,2}")
PARTICIPANT_COOKIE_SECONDS = 2 * 24 * 3600
MIN_ADMIN_TOKEN = 16
ADMIN_SESSION_SECONDS = 8 * 3600
DEFAULT_LIMITS = Limits()
DEFAULT_TRUSTED_PROXIES = ("127.0.0.1", "::1")
"""Whose ``X-Forwarded-*`` headers are believed by default: a reverse proxy on the same machine."""
DEFAULT_TITLE = "Which picture do these images show?"
DEFAULT_CONSENT = (  # "{n_items}" is replaced by the number of pages
    "This study is part of research on how well people can read the output of computer programs that explain "
    "image classifiers. You will see {n_items} sets of images and, for each, pick which of eight pictures "
    "the set most resembles. It takes about one minute per set at most.",
    "We store: each answer you give, the order in which the pictures were shown to you, when each page was shown "
    "and answered, when you started, your completion code, a fingerprint (hash) of the random key your browser "
    "keeps in a cookie, and the study platform's participant, study and session ids if the link carried them. We "
    "keep no name, email or internet address with your answers (the server uses your address only to limit how "
    "fast pages are requested).",
    "Taking part is voluntary and you can stop at any time by closing this page; answers given until then are "
    "kept. From the next page on, every page shows your participant id: send it to the researchers to withdraw "
    "your answers, and they are left out of every export and analysis from then on (the study's database keeps "
    "them, marked as withdrawn, with the date and reason of your request).",
)


def _num(value, digits: int = 3) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


class SurveyApp:
    """The routes of one study; :func:`create_app` wraps them in a Starlette application."""

    def __init__(self, study: Study, admin_token: str, *, title: str = DEFAULT_TITLE,
                 consent: tuple[str, ...] = DEFAULT_CONSENT):
        if len(admin_token) < MIN_ADMIN_TOKEN:
            raise ConfigError(f"The admin token must have at least {MIN_ADMIN_TOKEN} characters. "
                              f"Got {len(admin_token)}; leave it out to have one generated.")
        self.study, self.admin_token, self.title, self.consent = study, admin_token, title, consent
        self.secret = study.secret
        self.sessions = AdminSessions(ADMIN_SESSION_SECONDS, study.clock)
        self.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                            undefined=jinja2.StrictUndefined)
        self.templates.filters["num"] = _num
        self.templates.globals["simulation"] = study.simulation
        self.stylesheet = (HERE / "static" / "survey.css").read_bytes()

    def routes(self) -> list[Route]:
        return [Route("/", self.consent_page), Route("/consent", self.give_consent, methods=["POST"]),
                Route("/instructions", self.instructions), Route("/item", self.item_page),
                Route("/item/{position:int}", self.answer, methods=["POST"]),
                Route("/item/{position:int}/picture.png", self.picture),
                Route("/item/{position:int}/option/{choice:int}.png", self.option),
                Route("/done", self.done), Route("/static/survey.css", self.css), Route("/healthz", self.health),
                Route("/favicon.ico", self.favicon),
                Route("/admin", self.admin), Route("/admin/login", self.admin_login, methods=["POST"]),
                Route("/admin/logout", self.admin_logout, methods=["POST"]),
                Route("/admin/export.csv", self.export_csv), Route("/admin/export.json", self.export_json)]

    # helpers ----------------------------------------------------------------------------------------
    def page(self, template: str, status: int = 200, **context) -> HTMLResponse:
        context.setdefault("title", self.title)
        return HTMLResponse(self.templates.get_template(template).render(**context), status)

    def message(self, heading: str, message: str, status: int = 200, link: str | None = None,
                link_text: str = "") -> HTMLResponse:
        return self.page("message.html.j2", status, heading=heading, message=message, link=link, link_text=link_text)

    def participant(self, request: Request) -> Participant | None:
        token = request.cookies.get(PARTICIPANT_COOKIE)
        return self.study.store.participant(token_digest(token)) if token else None

    def require_participant(self, request: Request) -> Participant:
        participant = self.participant(request)
        if participant is None:
            raise HTTPException(403, "This page belongs to a participant; start from the study link.")
        return participant

    def form_page(self, request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        """A page with a form token bound to the browser's ``tb_form`` id (set here when the browser has none)."""
        given = request.cookies.get(FORM_COOKIE)
        browser = given or new_token()
        response = self.page(template, status, csrf=form_token(self.secret, template, browser), **context)
        if browser != given:  # lax: sent when a platform's link opens the study, not on foreign POSTs
            response.set_cookie(FORM_COOKIE, browser, httponly=True, samesite="lax",
                                secure=request.url.scheme == "https")
        return response

    def check_form(self, request: Request, form: dict[str, str], template: str) -> str:
        """The nonce of the form's valid token (403 otherwise)."""
        nonce = form_nonce(self.secret, template, request.cookies.get(FORM_COOKIE), form.get("csrf"))
        if nonce is None:
            raise HTTPException(403, "This form has expired or did not come from this site; reload the page.")
        return nonce

    # participant pages ------------------------------------------------------------------------------
    def consent_page(self, request: Request) -> Response:
        if self.participant(request):
            return RedirectResponse("/item", 303)
        platform = _platform(request.query_params)
        n_items = str(self.study.n_cell_items + ATTENTION_CHECKS)
        consent = [p.replace("{n_items}", n_items) for p in self.consent]
        return self.form_page(request, "consent.html.j2", consent=consent, platform=platform)

    async def give_consent(self, request: Request) -> Response:
        form = await read_form(request, {"csrf", "consent", *PLATFORM_FIELDS})
        nonce = self.check_form(request, form, "consent.html.j2")
        if form.get("consent") != "yes":
            return self.message("Thank you", "You did not agree to take part, so nothing was recorded. "
                                             "You can close this page.")
        platform = _platform(form)
        token = new_token()
        await run_in_threadpool(self.study.start_participant, token_digest(token), platform, consent_form=nonce)
        response = RedirectResponse("/instructions", 303)
        response.set_cookie(PARTICIPANT_COOKIE, token, max_age=PARTICIPANT_COOKIE_SECONDS, httponly=True,
                            samesite="lax", secure=request.url.scheme == "https")
        return response

    def instructions(self, request: Request) -> Response:
        participant = self.participant(request)
        if participant is None:
            return RedirectResponse("/", 303)
        return self.page("instructions.html.j2", n_items=participant.n_items,
                         participant_ref=self.study.reference(participant.participant_id))

    def item_page(self, request: Request) -> Response:
        participant = self.participant(request)
        if participant is None:
            return RedirectResponse("/", 303)
        assignment = self.study.current(participant)
        if assignment is None:
            return RedirectResponse("/done", 303)
        options = [{"choice": k, "letter": LETTERS[k]} for k in range(len(assignment.permutation))]
        return self.page("item.html.j2", position=assignment.position, number=assignment.position + 1,
                         total=participant.n_items, options=options,
                         participant_ref=self.study.reference(participant.participant_id),
                         csrf=sign(self.secret, "answer", token_digest(request.cookies[PARTICIPANT_COOKIE])))

    async def answer(self, request: Request) -> Response:
        participant = self.require_participant(request)
        form = await read_form(request, {"csrf", "choice"})
        if not verify(self.secret, "answer", token_digest(request.cookies[PARTICIPANT_COOKIE]), form.get("csrf")):
            raise HTTPException(403, "This form did not come from your own study page; reload the page.")
        choice = form.get("choice", "")
        if not CHOICE_VALUE.fullmatch(choice):
            raise SurveyError("The answer must be one of the options shown.", 400)
        await run_in_threadpool(self.study.answer, participant, request.path_params["position"], int(choice))
        return RedirectResponse("/item", 303)

    def picture(self, request: Request) -> Response:
        assignment = self.study.assignment(self.require_participant(request), request.path_params["position"])
        return _png(self.study.picture(assignment.item_id))

    def option(self, request: Request) -> Response:
        assignment = self.study.assignment(self.require_participant(request), request.path_params["position"])
        choice = request.path_params["choice"]
        if not 0 <= choice < len(assignment.permutation):
            raise HTTPException(404, "No such option.")
        return _png(self.study.option_picture(assignment, choice))

    def done(self, request: Request) -> Response:
        participant = self.participant(request)
        if participant is None:
            return RedirectResponse("/", 303)
        if not self.study.is_complete(participant):
            return RedirectResponse("/item", 303)
        return self.page("done.html.j2", code=participant.completion_code,
                         participant_ref=self.study.reference(participant.participant_id))

    def favicon(self, request: Request) -> Response:
        """No icon (browsers ask for one on every page; a 404 there would be an error in the console)."""
        return Response(status_code=204, headers={"cache-control": "public, max-age=86400"})

    def css(self, request: Request) -> Response:
        return Response(self.stylesheet, media_type="text/css", headers={"cache-control": "public, max-age=3600"})

    def health(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    # admin ------------------------------------------------------------------------------------------
    def require_admin(self, request: Request) -> None:
        """Admit the admin token (``Authorization: Bearer``) or a live session of the sign-in form; 401 without
        credentials, 403 with any other (a participant's token, an ended session)."""
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer" and same_token(self.admin_token, value.strip()):
                return
            raise HTTPException(403, "These credentials are not the admin token.")
        session = request.cookies.get(ADMIN_COOKIE)
        if self.sessions.valid(session):
            return
        if session is not None:
            raise HTTPException(403, "This admin session has ended; sign in again at /admin.")
        if request.cookies.get(PARTICIPANT_COOKIE):
            raise HTTPException(403, "Participants cannot open admin pages.")
        raise HTTPException(401, "Sign in with the admin token.", headers={"www-authenticate": "Bearer"})

    def admin(self, request: Request) -> Response:
        session = request.cookies.get(ADMIN_COOKIE)
        if "authorization" not in request.headers and not self.sessions.valid(session):
            response = self.form_page(request, "admin_login.html.j2", 401)  # also to a participant's browser
            if session is not None:
                response.delete_cookie(ADMIN_COOKIE, path="/admin")
            return response
        self.require_admin(request)
        fill = self.study.fill().values()
        scores = human_scores_of(self.study)
        return self.page("admin.html.j2", title="Survey summary", scores=scores,
                         n_answers=len(self.study.store.answers()), fill_min=min(fill, default=0),
                         fill_max=max(fill, default=0), target=self.study.design.answers_per_cell,
                         results_dir=str(self.study.results_dir),
                         csrf=sign(self.secret, "admin-logout", token_digest(session or "")))

    async def admin_login(self, request: Request) -> Response:
        form = await read_form(request, {"csrf", "token"})
        self.check_form(request, form, "admin_login.html.j2")
        if not same_token(self.admin_token, form.get("token", "")):
            log.warning("failed admin sign-in from %s", request.client.host if request.client else "?")
            raise HTTPException(403, "That is not the admin token.")
        response = RedirectResponse("/admin", 303)
        response.set_cookie(ADMIN_COOKIE, self.sessions.start(), max_age=ADMIN_SESSION_SECONDS, httponly=True,
                            samesite="strict", path="/admin", secure=request.url.scheme == "https")
        return response

    async def admin_logout(self, request: Request) -> Response:
        """End the session (the sign-out button of the summary page)."""
        self.require_admin(request)
        session = request.cookies.get(ADMIN_COOKIE, "")
        form = await read_form(request, {"csrf"})
        if not verify(self.secret, "admin-logout", token_digest(session), form.get("csrf")):
            raise HTTPException(403, "This form did not come from the admin page.")
        self.sessions.end(session)
        response = RedirectResponse("/admin", 303)
        response.delete_cookie(ADMIN_COOKIE, path="/admin")
        return response

    def export_csv(self, request: Request) -> Response:
        self.require_admin(request)
        return Response(export_csv(self.study.store), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": 'attachment; filename="answers.csv"'})

    def export_json(self, request: Request) -> Response:
        self.require_admin(request)
        return Response(export_json(self.study.store), media_type="application/json",
                        headers={"content-disposition": 'attachment; filename="answers.json"'})

    # errors -----------------------------------------------------------------------------------------
    async def http_error(self, request: Request, exc: HTTPException) -> Response:
        response = self.message(f"Error {exc.status_code}", str(exc.detail), exc.status_code, "/", "Back to the start")
        response.headers.update(exc.headers or {})
        return response

    async def survey_error(self, request: Request, exc: SurveyError) -> Response:
        link = ("/item", "Continue") if exc.status in (404, 409) else ("/", "Back to the start")
        return self.message("Sorry", str(exc), exc.status, *link)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        """The 500 page (the exception itself goes on to the server's log)."""
        response = self.message("Sorry", "Something went wrong on our side; your answers so far are saved. "
                                "Please try again in a moment.", 500, "/", "Back to the study")
        response.raw_headers = with_security_headers(response.raw_headers)
        return response


def human_scores_of(study: Study):
    """People's scores so far (see :func:`~trojanbench.survey.scores.human_scores`)."""
    from ..tasks.rediscovery.results import Results

    return human_scores(Results(study.results_dir), study.store)


async def read_form(request: Request, allowed: set[str]) -> dict[str, str]:
    """A URL-encoded form body with only ``allowed`` fields, each at most once (4xx otherwise)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise HTTPException(415, "Forms must be sent as application/x-www-form-urlencoded.")
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body),
                          max_num_fields=len(allowed))
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "Malformed form.") from None
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names) or not set(names) <= allowed:
        raise HTTPException(400, "Unexpected or repeated form fields.")
    return dict(pairs)


def _platform(values) -> dict[str, str]:
    """The crowd-platform ids among ``values`` (recorded as given; refused when malformed)."""
    platform = {name: values[name] for name in PLATFORM_FIELDS if values.get(name)}
    for name, value in platform.items():
        if not PLATFORM_VALUE.fullmatch(value):
            raise HTTPException(400, f"{name} must be 1 to 64 letters, digits, '_' or '-'.")
    return platform


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"cache-control": "private, max-age=3600"})


def create_app(study: Study, admin_token: str, *, limits: Limits = DEFAULT_LIMITS, title: str = DEFAULT_TITLE,
               consent: tuple[str, ...] = DEFAULT_CONSENT, rate_clock=time.monotonic) -> Starlette:
    """The ASGI application of ``study``; run it with :func:`serve`, :func:`serving` or any ASGI server
    (one process: the study's database connection is shared by the process's threads). ``rate_clock`` drives
    the rate limits (a test runs it faster to play people's pace in less time)."""
    survey = SurveyApp(study, admin_token, title=title, consent=consent)
    return Starlette(routes=survey.routes(), middleware=[Middleware(Guard, limits=limits, clock=rate_clock)],
                     exception_handlers={HTTPException: survey.http_error, SurveyError: survey.survey_error,
                                         Exception: survey.server_error})


def _uvicorn():
    return require_extra("uvicorn", "survey", "Serving the survey")


def serve(app: Starlette, host: str = "127.0.0.1", port: int = 8000,
          trusted_proxies: tuple[str, ...] = DEFAULT_TRUSTED_PROXIES) -> None:
    """Serve ``app`` until interrupted. ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from
    ``trusted_proxies`` (addresses or networks; ``"*"`` for any): the address they name is the one rate-limited."""
    _uvicorn().run(app, host=host, port=port, log_level="info", server_header=False, proxy_headers=True,
                   forwarded_allow_ips=list(trusted_proxies))


@contextlib.contextmanager
def serving(app: Starlette, host: str = "127.0.0.1",
            trusted_proxies: tuple[str, ...] = DEFAULT_TRUSTED_PROXIES) -> Iterator[str]:
    """Serve ``app`` in a background thread on a free local port; yields its base URL, stops on exit."""
    uvicorn = _uvicorn()
    sock = socket.socket()
    sock.bind((host, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", server_header=False, proxy_headers=True,
                                           forwarded_allow_ips=list(trusted_proxies)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the survey server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
