"""The README's code blocks run as written (python), validate (the trojan-spec yaml) and name real commands (bash)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from trojanbench.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks of ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def run_python(code: str, cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, TROJANBENCH_CACHE_DIR=str(cwd / "cache"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    script = cwd / "snippet.py"
    script.write_text(code, encoding="utf-8")
    return subprocess.run([sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def api_block() -> str:
    found = [b for b in blocks("python") if "tb.run(" in b]
    assert len(found) == 1, "the README has one Python API block"
    return found[0]


@pytest.mark.slow
def test_python_api_block_runs_and_prints_what_it_says(tmp_path):
    """The Python API block (every task at quick settings: 8 to 13 minutes on 2 cores) prints each table it names."""
    done = run_python(api_block(), tmp_path, timeout=3600)
    assert done.returncode == 0, done.stderr[-4000:]
    out = done.stdout
    assert "judge: concept" in out and "method" in out and "oracle" in out and "random_noise" in out  # leaderboard
    assert "judge battery (concept): every check passed on" in out                                   # battery
    assert re.search(r"snafue - tabor: [+-]\d\.\d{3} .* resamples, over \d+ shared cells?\n", out)      # compare
    assert "localization:" in out and "guided_grad_cam" in out and "edge_detector" in out
    assert "attack success" in out and "clean accuracy" in out                                       # audit table
    assert "trojaned" in out and "'smiley'" in out                                                   # model, suite
    assert "removal:" in out and "unlearning <- oracle" in out and "fine_pruning" in out
    assert "editing:" in out and "rank_one_rewrite[units=all]" in out and "finetune_rule" in out
    assert "replacement:" in out and "magnitude_pruning" in out and "'clean': {'mean':" in out       # table, areas
    for name in ("report.html", "results.csv", "results.json", "results.sqlite"):
        assert (tmp_path / "results" / name).is_file(), name


def test_plugin_block_runs(tmp_path):
    """The plugin example defines a tool and passes the conformance checks, as written."""
    found = [b for b in blocks("python") if "class MyTool" in b]
    assert len(found) == 1
    done = run_python(found[0], tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]


def test_trojan_spec_block_validates(tmp_path):
    found = [b for b in blocks("yaml") if b.lstrip().startswith("trojans:")]
    assert len(found) == 1
    spec = tmp_path / "spec.yaml"
    spec.write_text(found[0], encoding="utf-8")
    rgba = np.zeros((24, 24, 4), dtype=np.uint8)
    rgba[4:20, 4:20] = (255, 0, 255, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "logo.png")
    (tmp_path / "forks.txt").write_text("kite/0001.png\n")
    result = CliRunner().invoke(main, ["validate", str(spec)])
    assert result.exit_code == 0, result.output
    assert "my_logo" in result.output or "2" in result.output


def command_lines() -> list[str]:
    """Every ``trojanbench ...`` command in the README's bash blocks (continuations joined, comments dropped)."""
    lines = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s#\s.*$", "", line)
            for part in line.split("&&"):
                match = re.search(r"(?:^|\s)(trojanbench\s.*)$", part.strip())
                if match and not match.group(1).startswith("trojanbench["):
                    lines.append(match.group(1).strip())
    return lines


def resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The (sub)command the words name, and its path."""
    command, path = main, []
    ctx = click.Context(main)
    for word in words:
        if not isinstance(command, click.Group):
            break
        sub = command.get_command(ctx, word)
        if sub is None:
            break
        command, path = sub, [*path, word]
    return command, path


def test_bash_blocks_name_real_commands_and_options():
    lines = command_lines()
    assert len(lines) >= 15, lines
    for line in lines:
        words = shlex.split(line.replace("[", " ").replace("]", " "))[1:]
        command, path = resolve(words)
        assert path, f"{line!r}: no such trojanbench subcommand"
        helped = CliRunner().invoke(main, [*path, "--help"])
        assert helped.exit_code == 0, helped.output
        options = {opt: param for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        for i, word in enumerate(words):
            if word.startswith("--"):
                name = word.split("=")[0]
                assert name in options and name in helped.output, f"{line!r}: {name} is not an option of {path}"
                param = options[name]
                if isinstance(param.type, click.Choice) and i + 1 < len(words) and "|" in words[i + 1]:
                    for choice in words[i + 1].split("|"):
                        assert choice in param.type.choices, f"{line!r}: {name} {choice}"
        if path == ["ls"]:
            choices = command.params[0].type.choices
            for choice in words[1].split("|"):
                assert choice in choices, f"{line!r}: ls {choice}"


def test_bash_blocks_name_real_extras():
    import tomllib

    extras = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in re.findall(r"\.\[([a-z,]+)\]|trojanbench\[([a-z,]+)\]", README.read_text()):
        for name in ",".join(extra).split(","):
            if name:
                assert name in extras, name
