"""The command line, driven in-process through Click's runner: help, listings, exit codes."""

from __future__ import annotations

import json

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
