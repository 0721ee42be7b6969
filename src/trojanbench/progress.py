"""Progress while a run computes: a one-line live display on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """Called with ``(done, total, cell)`` after each cell; shows cells done, current cell, elapsed, ETA and, when
    given, the torch threads each worker uses."""

    def __init__(self, *, live: bool, quiet: bool = False, stream=None, threads: int | None = None):
        self.live, self.quiet, self.threads = live, quiet, threads
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.first_done: int | None = None

    def __call__(self, done: int, total: int, cell) -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        if self.first_done is None:
            self.first_done = done - 1  # cells already finished before this run started
        computed = done - self.first_done
        eta = elapsed / computed * (total - done) if computed else float("nan")
        what = getattr(cell, "label", None) or f"{cell.method} · {cell.trojan.name} · seed {cell.seed}"
        text = f"[{done}/{total}] {what}  elapsed {_clock(elapsed)}  ETA {_clock(eta)}"
        if self.threads:
            text += f"  ({self.threads} thread{'s' if self.threads > 1 else ''} per worker)"
        if self.live:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
        else:
            self.stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
            self.stream.flush()

    def close(self) -> None:
        if self.live and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    """``12m05s`` or ``1h02m`` (a duration, never to be read as a time of day); ``--`` when unknown."""
    if seconds != seconds:  # NaN
        return "--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def make_progress(*, quiet: bool = False, stream=None, threads: int | None = None) -> Progress:
    """A live display when ``stream`` (default stderr) is a terminal, log lines otherwise."""
    stream = stream or sys.stderr
    return Progress(live=hasattr(stream, "isatty") and stream.isatty(), quiet=quiet, stream=stream, threads=threads)
