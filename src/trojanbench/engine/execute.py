"""The one path by which a cell fails: a time budget and :func:`attempt`, which turns any failure of a cell's
work (an exception, running past the budget) into a ``failed`` :class:`Outcome` with its reason. It never stops
a run."""

from __future__ import annotations

import logging
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..errors import MethodError

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one cell's work gave: its ``value`` (``ok``) or the ``reason`` it failed, and the seconds it took."""

    key: str
    status: str  # "ok" | "failed"
    seconds: float
    value: Any = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class CellTimeout(MethodError):
    """A cell ran past its time budget."""


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise :class:`CellTimeout` in the main thread after ``seconds`` (no-op outside the main thread)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise CellTimeout(f"exceeded its time budget of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def attempt(work: Callable[[], Any], *, timeout: float | None, what: str, key: str = "") -> Outcome:
    """Run ``work()`` within ``timeout`` seconds (``None``: ``work`` keeps its own budget); any failure is
    returned as a ``failed`` outcome (``what`` names the cell in the log), never raised."""
    start = time.perf_counter()
    try:
        if timeout is None:
            value = work()
        else:
            with time_budget(timeout):
                value = work()
        return Outcome(key, "ok", time.perf_counter() - start, value)
    except Exception as exc:  # noqa: BLE001 - any failure of a cell's work is recorded, not raised
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("%s failed: %s", what, reason)
        log.debug("%s", traceback.format_exc())
        return Outcome(key, "failed", time.perf_counter() - start, reason=reason[:2000])
