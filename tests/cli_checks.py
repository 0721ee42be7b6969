"""Invoking the command line in-process, and checking a refusal of bad input: one line, exit code 2."""

from __future__ import annotations

from click.testing import CliRunner

from trojanbench.cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(result, *fragments: str) -> str:
    """The one line of a refusal (exit code 2, no traceback), checked to hold every fragment."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
