"""Computing one cell in a worker: build the method, run it with a time budget, validate its images.

Any failure (an exception, NaN, wrong shape, values out of range, running past the budget) becomes a
``failed`` outcome with the reason; it never stops the run. Workers keep the audited :class:`Target`
(built once per model) between cells.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..errors import MethodError

log = logging.getLogger(__name__)

_targets: dict[str, Any] = {}


@dataclass
class CellOutcome:
    """What a worker sends back: uint8 images ``[n, H, W, 3]`` or the reason it failed."""

    key: str
    status: str  # "ok" | "failed"
    seconds: float
    pixels: np.ndarray | None = None
    reason: str | None = None


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


def get_target(model_ref: str):
    """The frozen audited model with the auditor's data, built once per worker and model."""
    if model_ref not in _targets:
        from ..methods import Target
        from ..models import load_model

        _targets[model_ref] = Target.from_model(load_model(model_ref))
    return _targets[model_ref]


def compute_cell(key: str, payload: dict[str, Any], model_ref: str, timeout: float,
                 plugins: tuple[str, ...] = ()) -> CellOutcome:
    """Run one cell; never raises for a method's failure."""
    from ..registry import load_plugin
    from ..report.images import to_uint8
    from ..tasks import make_method, synthesize_for_trojan
    from .cells import trojan_from_payload

    for plugin in plugins:
        load_plugin(plugin)
    start = time.perf_counter()
    try:
        target = get_target(model_ref)
        method = make_method(payload["method"], payload["params"])
        with time_budget(timeout):
            images = synthesize_for_trojan(method, target, trojan_from_payload(payload["trojan"]),
                                           n_images=payload["n_images"], seed=payload["seed"])
        return CellOutcome(key, "ok", time.perf_counter() - start, pixels=to_uint8(images))
    except Exception as exc:  # noqa: BLE001 - any failure of a method is recorded, not raised
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("cell %s (%s, %s) failed: %s", key, payload["method"], payload["trojan"]["name"], reason)
        log.debug("%s", traceback.format_exc())
        return CellOutcome(key, "failed", time.perf_counter() - start, reason=reason[:2000])
