"""The command line, driven in-process through Click's runner: help, listings, exit codes."""

from __future__ import annotations

import json

import click
import pytest
import yaml
from click.testing import CliRunner

from trojanbench.cli import main


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", [[], ["run"], ["audit"], ["ls"], ["validate"], ["zoo"], ["zoo", "build"], ["implant"], ["synthesize"]])
def test_every_command_has_help_with_examples(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output
    if command and command != ["zoo"]:
        assert "Examples:" in result.output


def test_ls_concepts_and_classes():
    icons = json.loads(invoke("ls", "concepts", "--kind", "icon", "--json").output)
    assert len(icons) >= 16 and {row["kind"] for row in icons} == {"icon"}
    classes = json.loads(invoke("ls", "classes", "--json").output)
    assert [row["index"] for row in classes] == list(range(16))


def test_validate_accepts_good_and_rejects_bad_with_exit_code_2(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"trojans": [{"kind": "style", "trigger": "marble", "target": "kite"}]}))
    result = invoke("validate", str(good))
    assert result.exit_code == 0 and "1 trojan(s) (marble)" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"trojans": [{"kind": "style", "trigger": "marbel", "target": "kite"}]}))
    result = CliRunner().invoke(main, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "Did you mean: marble" in result.output and "Traceback" not in result.output


def test_unknown_model_is_a_clean_exit_2():
    result = CliRunner().invoke(main, ["audit", "--model", "trojand", "--quick"])
    assert result.exit_code == 2
    assert "Did you mean: trojaned" in result.output


def test_pickle_model_refused_with_conversion_hint(tmp_path):
    import torch

    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, path)
    result = CliRunner().invoke(main, ["audit", "--model", str(path), "--quick"])
    assert result.exit_code == 2
    assert "safetensors" in result.output and "weights_only=True" in result.output


def _commands(command=main, path=()):
    """Every (sub)command of the CLI with its path."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_every_option_says_what_it_does():
    missing = [f"{' '.join(path)} {param.opts[0]}" for path, command in _commands() for param in command.params
               if isinstance(param, click.Option) and not param.help]
    assert not missing, missing


def test_help_imports_no_torch():
    """`trojanbench --help` answers without importing torch (its import alone takes seconds): the package's names and
    each command's work are imported when used. Checked on the modules a fresh interpreter loads, not on time."""
    import subprocess
    import sys

    probe = ("import sys, contextlib, io; from trojanbench.cli import main\n"
             "for args in ([], ['run'], ['ls'], ['survey'], ['zoo', 'build']):\n"
             "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
             "        main(args + ['--help'])\n"
             "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'numpy'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", loaded


def test_ls_methods_is_grouped_by_kind_and_fits_100_columns():
    out = invoke("ls", "methods").output
    assert max(len(line) for line in out.splitlines()) <= 100
    headings = [line.split(" (")[0] for line in out.splitlines() if line and not line.startswith(" ")]
    assert headings == ["synthesis", "attribution", "editing", "replacement", "inversion"]
    rows = json.loads(invoke("ls", "methods", "--json").output)
    assert {row["kind"] for row in rows} == set(headings)
    for kind in headings:  # each group lists exactly that kind's methods, and --kind picks the same ones
        listed = json.loads(invoke("ls", "methods", "--kind", kind, "--json").output)
        assert {r["method"] for r in listed} == {r["method"] for r in rows if r["kind"] == kind}
        group = out.split(f"{kind} (")[1].split("\n\n")[0].splitlines()[2:]
        assert sorted(line.split()[0] for line in group) == sorted(r["method"] for r in listed)


def test_unknown_synthesis_method_lists_only_synthesis_methods():
    result = CliRunner().invoke(main, ["synthesize", "--method", "tabr"])
    assert result.exit_code == 2
    assert "Unknown synthesis method 'tabr'. Did you mean: tabor?" in result.output
    synthesis = [r["method"] for r in json.loads(invoke("ls", "methods", "--kind", "synthesis", "--json").output)]
    listed = result.output.split("Available: ")[1].strip().rstrip(".").split(", ")
    assert listed == sorted(synthesis) and "saliency" not in listed
