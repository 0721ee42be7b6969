"""Security basics of the survey app: bearer tokens, admin sessions, CSRF signatures, rate limits and request-size
limits.

Tokens carry 256 bits from :mod:`secrets`; the database keeps only their SHA-256. Form signatures are
HMAC-SHA256 of a purpose and a subject under the study's secret, compared in constant time; a visitor's form
token is a nonce signed with the form's purpose and the browser's ``tb_form`` id, so every form it has open
stays valid.
Rate limits are token buckets: pages and answers per participant token and per client address, pictures
separately and more generously (a page shows nine), so that many participants behind one address (a NAT, a
proxy) are not refused; size limits refuse a body or a query string past their bound before the application
reads it.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from ..errors import require_extra

require_extra("starlette", "survey", "The survey app")

from starlette.exceptions import HTTPException  # noqa: E402
from starlette.responses import HTMLResponse, PlainTextResponse, Response  # noqa: E402

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
PARTICIPANT_COOKIE = "tb_participant"
ADMIN_COOKIE = "tb_admin"
FORM_COOKIE = "tb_form"
"""A random id per browser that binds the tokens of the forms it was given (never replaced while it is there)."""
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """What the database keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def sign(secret: bytes, purpose: str, subject: str) -> str:
    """HMAC-SHA256 of ``purpose`` and ``subject`` under ``secret`` (hex)."""
    return hmac.new(secret, f"{purpose}\x00{subject}".encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def verify(secret: bytes, purpose: str, subject: str, signature: str | None) -> bool:
    return same_token(sign(secret, purpose, subject), signature)


def form_token(secret: bytes, purpose: str, browser: str) -> str:
    """A fresh token for one form of ``purpose`` given to ``browser`` (its ``tb_form`` id): ``nonce.signature``."""
    nonce = secrets.token_hex(16)
    return f"{nonce}.{sign(secret, purpose, f'{browser}.{nonce}')}"


def form_nonce(secret: bytes, purpose: str, browser: str | None, token: str | None) -> str | None:
    """The nonce of ``token`` when it is a form token of ``purpose`` given to ``browser``, else ``None``."""
    nonce, _, signature = (token or "").partition(".")
    return nonce if nonce and browser and verify(secret, purpose, f"{browser}.{nonce}", signature) else None


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a presented token (any text) with the expected one, as UTF-8 bytes."""
    return given is not None and hmac.compare_digest(expected.encode("utf-8", "surrogatepass"),
                                                     given.encode("utf-8", "surrogatepass"))


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Raw response ``headers`` plus each of :data:`SECURITY_HEADERS` they do not set themselves."""
    names = {name for name, _ in headers}
    return [*headers, *((k, v) for k, v in SECURITY_HEADERS if k not in names)]


class AdminSessions:
    """Admin sessions held by this process alone, so a restart ends them all: the SHA-256 of each session's random
    token with its expiry (``seconds`` after sign-in on ``clock``); :meth:`end` revokes one at sign-out."""

    def __init__(self, seconds: float, clock=time.time):
        self.seconds, self.clock = seconds, clock
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self) -> str:
        """A new session's token (the expired ones are forgotten here)."""
        token = new_token()
        with self._lock:
            now = self.clock()
            self._expiry = {k: v for k, v in self._expiry.items() if v > now}
            self._expiry[token_digest(token)] = now + self.seconds
        return token

    def valid(self, token: str | None) -> bool:
        with self._lock:
            return bool(token) and self._expiry.get(token_digest(token), float("-inf")) > self.clock()

    def end(self, token: str) -> None:
        with self._lock:
            self._expiry.pop(token_digest(token), None)


@dataclass(frozen=True)
class Limits:
    """Per-minute request rates (bursts of a quarter of that) and size bounds for one server.

    Pages and answers count against the participant's token (a person reads a page in seconds: 120 a minute is
    ample) and against the client address, which many participants may share (6,000 a minute is 100 people
    behind one address at a page every 2 s); pictures (``*.png``, ``/static/``, the icon) count only against
    their own, larger, buckets. Requests without a participant token count against the address alone.
    """

    per_address_per_minute: int = 6000
    per_participant_per_minute: int = 120
    images_per_address_per_minute: int = 30000
    images_per_participant_per_minute: int = 1200
    max_body_bytes: int = 4096
    max_query_bytes: int = 1024


class RateLimiter:
    """Token buckets keyed by any string, refilled continuously; the oldest idle keys are forgotten."""

    def __init__(self, per_minute: int, max_keys: int = 20000, clock=time.monotonic):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute / 4)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, key: str) -> float:
        """Take one token for ``key``: 0 when allowed, else the seconds until one is available."""
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.pop(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            allowed = tokens >= 1
            self._buckets[key] = (tokens - 1 if allowed else tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return 0.0 if allowed else (1 - tokens) / self.rate


def request_cookie(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    """The value of cookie ``name`` in raw ASGI headers (``None`` when absent or unparsable)."""
    for key, value in headers:
        if key == b"cookie":
            try:
                morsel = SimpleCookie(value.decode("latin-1")).get(name)
            except CookieError:
                return None
            if morsel is not None:
                return morsel.value
    return None


def is_picture(path: str) -> bool:
    """Whether ``path`` is a picture or a static file (rate-limited apart from pages and answers)."""
    return path.endswith(".png") or path.startswith("/static/") or path == "/favicon.ico"


def too_many_requests(scope, seconds: int) -> HTMLResponse:
    """The page of a refused request: what happened, a link that tries again, and ``Retry-After``."""
    path = scope.get("path", "/")
    if scope.get("method") != "GET":
        link, note = "/item", "Your last answer was not saved yet; please give it again."
    else:
        query = scope.get("query_string", b"").decode("latin-1")
        link, note = path + (f"?{query}" if query else ""), ""
    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>Please wait a moment</title>'
            f'<link rel="stylesheet" href="/static/survey.css"></head><body><main><h1>Please wait a moment</h1>'
            f'<p>The study server is busy. {html.escape(note)} Wait {seconds} s, then continue.</p>'
            f'<p><a href="{html.escape(link)}">Try again</a></p></main></body></html>')
    return HTMLResponse(body, 429, headers={"retry-after": str(seconds)})


class Guard:
    """ASGI middleware: size limits (413/414), rate limits (429, a page with a link to try again) and security
    headers on every response (the 500 page, sent from outside every middleware, adds them itself). ``clock``
    drives the rate limits."""

    def __init__(self, app, limits: Limits, clock=time.monotonic):
        self.app, self.limits = app, limits
        self.per_address = RateLimiter(limits.per_address_per_minute, clock=clock)
        self.per_participant = RateLimiter(limits.per_participant_per_minute, clock=clock)
        self.images_per_address = RateLimiter(limits.images_per_address_per_minute, clock=clock)
        self.images_per_participant = RateLimiter(limits.images_per_participant_per_minute, clock=clock)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async def secured_send(message):
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(list(message.get("headers", [])))
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, secured_send)
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limits.max_body_bytes:
                raise HTTPException(413, f"Request body larger than {self.limits.max_body_bytes} bytes.")
            return message

        await self.app(scope, limited_receive, secured_send)

    def _refusal(self, scope) -> Response | None:
        if len(scope.get("query_string", b"")) > self.limits.max_query_bytes:
            return PlainTextResponse("Query string too long.", 414)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return PlainTextResponse("Malformed Content-Length.", 400)
            if int(length) > self.limits.max_body_bytes:
                return PlainTextResponse(f"Request body larger than {self.limits.max_body_bytes} bytes.", 413)
        address = (scope.get("client") or ("unknown", 0))[0]  # the proxy's client when the proxy is trusted
        token = request_cookie(scope["headers"], PARTICIPANT_COOKIE)
        by_address, by_participant = self.per_address, self.per_participant
        if is_picture(scope.get("path", "")):
            by_address, by_participant = self.images_per_address, self.images_per_participant
        wait = by_address.wait(address)
        if not wait and token:
            wait = by_participant.wait(token_digest(token))
        if wait:
            log.info("rate limit: refused %s %s from %s", scope.get("method"), scope.get("path"), address)
            return too_many_requests(scope, max(1, math.ceil(wait)))
        return None
