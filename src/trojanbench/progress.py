"""Progress while a run computes: a live display on a terminal (drawn with ``rich``), plain lines otherwise.

The display appears as soon as the run starts (``preparing`` while models and judges load), names the cell
running now, counts cells done, and shows elapsed time and an ETA as durations (``12m05s``, ``1h02m``). Log
lines written while it is live go above it, never onto it.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, SpinnerColumn, TextColumn
from rich.progress import Progress as RichProgress
from rich.text import Text


@dataclass(frozen=True)
class Step:
    """One step of work that is not a cell (a training step, an audit measurement), as a display names it."""

    label: str


class Progress:
    """The run calls ``begin(done, total, todo)`` once its plan is known and ``(done, total, cell)`` after each
    cell; ``close()`` ends the display. ``threads``, when given, is shown (torch threads per worker)."""

    def __init__(self, *, live: bool, quiet: bool = False, stream=None, threads: int | None = None):
        self.live, self.quiet, self.threads = live and not quiet, quiet, threads
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.first_done: int | None = None
        self.todo: list[Any] = []
        self._display = None
        if self.live:
            self._display = _LiveDisplay(self.stream)

    def begin(self, done: int, total: int, todo: Sequence[Any]) -> None:
        """The plan: ``done`` of ``total`` cells already finished, ``todo`` to compute, in order."""
        self.first_done, self.todo = done, list(todo)
        self._show(done, total)

    def __call__(self, done: int, total: int, cell) -> None:
        if self.first_done is None:  # a caller that never said begin(): cells before this one were done already
            self.first_done = done - 1
        self._show(done, total, finished=cell)

    def _show(self, done: int, total: int, finished=None) -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        computed = done - self.first_done
        eta = elapsed / computed * (total - done) if computed else float("nan")
        running = self.todo[computed] if computed < len(self.todo) else None
        threads = f"  ({self.threads} thread{'s' if self.threads > 1 else ''} per worker)" if self.threads else ""
        # a step after the planned cells (e.g. the judges' battery) names itself while it runs
        after_cells = finished is not None and bool(self.todo) and running is None and finished not in self.todo
        if running is not None:
            now = f"running {label(running)}"
        elif finished is not None and (not self.todo or after_cells):  # no plan (a training run), or work after it
            now = label(finished)
        else:
            now = "finishing"
        if self._display is not None:
            self._display.update(done, total, now, eta_at=time.monotonic() + eta, threads=threads)
        elif finished is not None:  # plain lines: one per finished cell, with what runs next
            said = f"done {label(finished)}; {now}" if self.todo and not after_cells else now
            timing = f"elapsed {clock(elapsed)}  ETA {clock(eta)}{threads}"
            self.stream.write(f"{time.strftime('%H:%M:%S')} [{done}/{total}] {said}  {timing}\n")
            self.stream.flush()
        else:
            self.stream.write(f"{time.strftime('%H:%M:%S')} [{done}/{total}] done, {total - done} to compute; {now}\n")
            self.stream.flush()

    def close(self) -> None:
        if self._display is not None:
            self._display.stop(time.monotonic() - self.start)
            self._display = None


class _LiveDisplay:
    """A ``rich`` progress bar on ``stream`` that keeps log lines above it while it is shown; elapsed time and ETA
    tick between updates."""

    def __init__(self, stream) -> None:
        self.console = Console(file=stream)
        self.bar = RichProgress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(bar_width=24),
                            TextColumn("{task.fields[running]}"), _TimingColumn(),
                            console=self.console, redirect_stderr=stream is sys.__stderr__ or stream is sys.stderr)
        self.task = self.bar.add_task("preparing", total=None, running="loading models and judges", eta_at=None,
                                      threads="")
        self.bar.start()
        self._rerouted = _route_log_handlers(stream, sys.stderr)

    def update(self, done: int, total: int, running: str, *, eta_at: float, threads: str) -> None:
        self.bar.update(self.task, description=f"{done}/{total}", completed=done, total=total, running=running,
                        eta_at=eta_at, threads=threads)
        self.bar.refresh()  # a cell's update is shown at once, not at the next tick

    def stop(self, elapsed: float) -> None:
        for handler, original in self._rerouted:
            handler.setStream(original)
        task = self.bar.tasks[0]
        self.bar.update(self.task, running=f"done in {clock(elapsed)}" if task.finished else "stopped", eta_at=None)
        self.bar.stop()


class _TimingColumn(ProgressColumn):
    """``elapsed 1m05s  ETA 12m05s``, re-drawn as the clock runs."""

    def render(self, task) -> Text:
        eta_at = task.fields.get("eta_at")
        eta = clock(max(0.0, eta_at - time.monotonic())) if eta_at is not None and eta_at == eta_at else "--"
        text = f"elapsed {clock(task.elapsed or 0.0)}" + (f"  ETA {eta}" if task.total and not task.finished else "")
        return Text(text + task.fields.get("threads", ""), style="dim")


def _route_log_handlers(stream, proxy) -> list[tuple[logging.StreamHandler, Any]]:
    """Point the root logger's handlers that write to ``stream`` at ``proxy`` (rich's stand-in for stderr, which
    prints above the live display); returns what to restore."""
    if proxy is stream:
        return []
    rerouted = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is stream:
            rerouted.append((handler, handler.setStream(proxy)))
    return rerouted


def label(cell) -> str:
    """How a cell is named on the display: its own ``label`` or ``method · trojan · seed``."""
    return getattr(cell, "label", None) or f"{cell.method} · {cell.trojan.name} · seed {cell.seed}"


def clock(seconds: float) -> str:
    """``12m05s`` or ``1h02m`` (a duration, never to be read as a time of day); ``--`` when unknown."""
    if seconds != seconds:  # NaN
        return "--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def make_progress(*, quiet: bool = False, stream=None, threads: int | None = None) -> Progress:
    """A live display when ``stream`` (default stderr) is a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    return Progress(live=hasattr(stream, "isatty") and stream.isatty(), quiet=quiet, stream=stream, threads=threads)
