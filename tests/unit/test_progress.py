"""The progress display: plain lines off a terminal, a live display on one that keeps log lines apart."""

from __future__ import annotations

import io
import logging
import re

from trojanbench.progress import Progress, Step, clock


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_clock_reads_as_a_duration():
    assert [clock(s) for s in (5, 65, 725, 3725, float("nan"))] == ["0m05s", "1m05s", "12m05s", "1h02m", "--"]


def test_plain_lines_name_what_finished_and_what_runs_next():
    out = io.StringIO()
    progress = Progress(live=False, stream=out, threads=1)
    steps = [Step("tabor · smiley · seed 0"), Step("tabor · fork · seed 0")]
    progress.begin(1, 3, steps)  # one cell finished by an earlier run
    progress(2, 3, steps[0])
    progress(3, 3, steps[1])
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("[1/3] done, 2 to compute; running tabor · smiley · seed 0")
    assert "[2/3] done tabor · smiley · seed 0; running tabor · fork · seed 0" in lines[1]
    assert "[3/3] done tabor · fork · seed 0; finishing" in lines[2]
    assert re.search(r"elapsed \d+m\d\ds  ETA \d+m\d\ds  \(1 thread per worker\)", lines[1])


def test_a_step_after_the_planned_cells_names_itself():
    out = io.StringIO()
    progress = Progress(live=False, stream=out)
    progress.begin(0, 1, [Step("tabor · smiley · seed 0")])
    progress(1, 1, Step("tabor · smiley · seed 0"))
    progress(1, 1, Step("judge battery: concept · smiley · seed 0"))
    lines = out.getvalue().splitlines()
    assert "[1/1] done tabor · smiley · seed 0; finishing" in lines[1]
    assert "[1/1] judge battery: concept · smiley · seed 0  elapsed" in lines[2]


def test_quiet_prints_nothing():
    out = io.StringIO()
    progress = Progress(live=True, quiet=True, stream=out)
    progress.begin(0, 1, [Step("x")])
    progress(1, 1, Step("x"))
    progress.close()
    assert out.getvalue() == ""


def test_live_display_keeps_log_lines_apart(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    handler = logging.StreamHandler(terminal)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    progress = Progress(live=True, stream=terminal)
    progress.begin(0, 2, [Step("tabor · smiley · seed 0"), Step("tabor · fork · seed 0")])
    logging.getLogger("trojanbench").warning("cell 7a10 (tabor, smiley, seed 0) failed: boom")
    progress(1, 2, Step("tabor · smiley · seed 0"))
    progress(2, 2, Step("tabor · fork · seed 0"))
    progress.close()
    assert handler.stream is terminal  # the log handler writes where it did before the display
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())
    log_lines = [line for line in re.split(r"[\r\n]", shown) if "WARNING" in line]
    assert log_lines == ["WARNING cell 7a10 (tabor, smiley, seed 0) failed: boom"]  # on a line of its own
    assert "running tabor · smiley · seed 0" in shown and "2/2" in shown and "done in " in shown
