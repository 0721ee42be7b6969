"""The one path by which a cell fails, and the limits a cell runs under.

:func:`attempt` turns any failure of a cell's work into a ``failed`` :class:`Outcome` with its reason, and never
stops a run: an exception, a method that calls ``sys.exit`` or raises another ``BaseException`` (only the user's
own Ctrl-C stops the run), or a limit exceeded. A cell has two limits:

* a **work budget** (:func:`work_budget`): the number of images the audited model may process in forward passes.
  It measures work, not the clock, so a busy or slow machine makes a run slower, never different; a cell over it
  fails the same way on every machine.
* a **wall-clock guard** (:func:`time_budget`): generous, only against a method that hangs. Running past it is a
  *transient* failure (as is running out of memory): the next run of the same command computes the cell again.

Both limits raise subclasses of :class:`CellLimitExceeded`, a ``BaseException``, so a method's ``except
Exception`` cannot catch them away; the guard keeps firing each second until the work stops, and work that
swallowed it and returned anyway is still recorded as failed.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import traceback
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)

TRANSIENT_FAILURES = ("CellTimeout", "OutOfMemoryError", "MemoryError")
"""Failures (by the exception's name, which starts a failed cell's reason) that a rerun may not repeat."""


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


def is_transient(reason: str | None) -> bool:
    """Whether a failed cell's ``reason`` is a transient failure (a timeout or out of memory)."""
    return bool(reason) and reason.split(":", 1)[0] in TRANSIENT_FAILURES


class CellLimitExceeded(BaseException):
    """A cell went past one of its limits. Deliberately not an ``Exception`` (and so outside the package's error
    tree): it must reach :func:`attempt` through any ``except Exception`` in a method; it never leaves it."""


class CellTimeout(CellLimitExceeded):
    """A cell ran past its wall-clock guard (transient: recomputed on the next run)."""


class WorkBudgetExceeded(CellLimitExceeded):
    """A cell asked the audited model for more forward passes than its work budget."""


@contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CellTimeout` in the main thread after ``seconds``, then again every second until the block
    ends; a block that caught them all and returned still raises it at its end. ``None``: no guard; outside the
    main thread the guard is the executor's (a Ray task is cancelled)."""
    if seconds is None or threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "setitimer"):
        yield
        return
    message = f"exceeded its wall-clock guard of {seconds:g} s"
    expired = False

    def expire(signum, frame):
        nonlocal expired
        expired = True
        raise CellTimeout(message)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if expired:
        raise CellTimeout(message + " (its method caught the timeout and went on)")


@contextmanager
def work_budget(model: Any, images: int | None) -> Iterator[None]:
    """Count the images ``model`` (a torch module) processes in forward passes in this block; past ``images``,
    every further forward pass raises :class:`WorkBudgetExceeded`. ``None``: no budget."""
    if images is None:
        yield
        return
    used = 0

    def count(module, inputs):
        nonlocal used
        used += int(inputs[0].shape[0]) if inputs and hasattr(inputs[0], "shape") and inputs[0].dim() else 1
        if used > images:
            raise WorkBudgetExceeded(f"exceeded its work budget of {images} images through the audited model "
                                     f"(the suite's cell_budget)")

    handle = model.register_forward_pre_hook(count)
    try:
        yield
    finally:
        handle.remove()


class _UserInterrupts:
    """Tells the user's Ctrl-C or a ``kill`` (a real SIGINT or SIGTERM, which stop the run) from a
    ``KeyboardInterrupt`` a method raised."""

    def __init__(self) -> None:
        self.received = False

    @contextmanager
    def watch(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self.received = False

        def interrupted(signum, frame):
            self.received = True
            raise KeyboardInterrupt

        previous = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_interrupts = _UserInterrupts()


def attempt(work: Callable[[], Any], *, timeout: float | None, what: str, key: str = "") -> Outcome:
    """Run ``work()`` under a wall-clock guard of ``timeout`` seconds (``None``: ``work`` keeps its own guard);
    any failure is returned as a ``failed`` outcome (``what`` names the cell in the log), never raised, except
    the user's own Ctrl-C or a SIGTERM (raised as ``KeyboardInterrupt``)."""
    start = time.perf_counter()
    try:
        with _interrupts.watch(), time_budget(timeout) if timeout is not None else nullcontext():
            value = work()
        return Outcome(key, "ok", time.perf_counter() - start, value)
    except BaseException as exc:  # noqa: BLE001 - any failure of a cell's work is recorded, not raised
        if isinstance(exc, KeyboardInterrupt) and _interrupts.received:
            raise
        reason = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, (Exception, CellLimitExceeded)):
            reason += " (a method may not end the run: the cell failed, the run went on)"
        log.warning("%s failed: %s", what, reason)
        log.debug("%s", traceback.format_exc())
        return Outcome(key, "failed", time.perf_counter() - start, reason=reason[:2000])
