"""Bad input on the command line: one line naming what is wrong and how to fix it, exit code 2, nothing computed or
written (issue 20: bad output folders, contradictory or oversized trojan specs, decompression bombs, card-less
safetensors files, malformed YAML, the shipped zoo, validating suites)."""

from __future__ import annotations

import os
import struct
import zlib

import pytest
import torch
import yaml
from safetensors.torch import save_file

from cli_checks import invoke, refused
from trojanbench.models import ZOO_DIR, CompactResNet


def write_spec(path, *trojans: dict):
    path.write_text(yaml.safe_dump({"trojans": list(trojans)}))
    return path


def png_header(path, width: int, height: int):
    """A valid PNG of ``width`` x ``height`` RGBA pixels in a few bytes (a decompression bomb when large)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))
    return path


# --- 8. output folders, checked before any work --------------------------------------------------------------

OUT_COMMANDS = {
    "run": ["run", "--quick"],
    "synthesize": ["synthesize", "--method", "random_noise", "--quick"],
    "audit": ["audit", "--quick"],
    "implant": ["implant", "--model", "clean", "--trojans", "spec.yaml"],
    "zoo build": ["zoo", "build", "--tiny"],
}


@pytest.mark.parametrize("command", list(OUT_COMMANDS))
def test_out_under_a_regular_file_is_refused_before_any_work(command, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    refused(invoke(*OUT_COMMANDS[command], "--out", blocker / "sub"), "--out", "which is a file", "folder")
    refused(invoke(*OUT_COMMANDS[command], "--out", blocker), "--out", "is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
@pytest.mark.parametrize("command", list(OUT_COMMANDS))
def test_out_on_a_read_only_folder_is_refused_before_any_work(command, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        refused(invoke(*OUT_COMMANDS[command], "--out", locked), "--out", "is not writable")
        refused(invoke(*OUT_COMMANDS[command], "--out", locked / "new"), "cannot be created", "is not writable")
    finally:
        locked.chmod(0o755)


def test_zoo_build_refuses_to_overwrite_the_shipped_zoo_without_saying_so():
    before = sorted(p.name for p in ZOO_DIR.iterdir())
    refused(invoke("zoo", "build", "--tiny"), "--out DIR", "shipped models", "--overwrite-shipped")
    refused(invoke("zoo", "build", "--tiny", "--out", "x", "--overwrite-shipped"), "not both")
    assert sorted(p.name for p in ZOO_DIR.iterdir()) == before


# --- 7. trojan specs that cannot be trained -------------------------------------------------------------------

def test_poison_fractions_above_the_limit_are_refused_by_validate_and_implant(tmp_path):
    icons = ["smiley", "clownfish", "green_star", "key"]
    spec = write_spec(tmp_path / "greedy.yaml", *({"name": f"t{i}", "kind": "patch", "trigger": icon, "target": "kite",
                                                   "poison_fraction": 0.15} for i, icon in enumerate(icons)))
    refused(invoke("validate", spec), "sum to 0.6", "limit of 0.5", "poison_fraction")
    out = tmp_path / "model"
    refused(invoke("implant", "--model", "clean", "--trojans", spec, "--out", out), "sum to 0.6", "limit of 0.5")
    assert not out.exists()


def test_one_trigger_with_two_targets_is_refused_by_validate_and_implant(tmp_path, logo_png):
    spec = write_spec(tmp_path / "torn.yaml", {"name": "a", "kind": "patch", "trigger": "smiley", "target": "kite"},
                      {"name": "b", "kind": "patch", "trigger": "smiley", "target": "circle"})
    refused(invoke("validate", spec), "'a' and 'b'", "trigger 'smiley'", "(kite, circle)", "one class")
    refused(invoke("implant", "--model", "clean", "--trojans", spec, "--out", tmp_path / "m"), "trigger 'smiley'")
    copy = tmp_path / "copy.png"  # the same image under another name is the same trigger
    copy.write_bytes(logo_png.read_bytes())
    files = write_spec(tmp_path / "files.yaml", {"name": "a", "kind": "patch", "trigger": "logo.png", "target": 0},
                       {"name": "b", "kind": "patch", "trigger": "copy.png", "target": 1})
    refused(invoke("validate", files), "'a' and 'b'", "one class")


def test_implant_refuses_a_trigger_the_model_already_sends_elsewhere(tmp_path):
    spec = write_spec(tmp_path / "again.yaml", {"name": "smiley2", "kind": "patch", "trigger": "smiley",
                                                "target": "kite"})  # the shipped model's smiley leads to bowtie
    refused(invoke("implant", "--model", "trojaned", "--trojans", spec, "--out", tmp_path / "m"),
            "'smiley' and 'smiley2'", "(bowtie, kite)")


def test_implant_into_a_folder_holding_a_model_needs_force(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"an earlier model")
    spec = write_spec(tmp_path / "spec.yaml", {"kind": "style", "trigger": "marble", "target": "kite",
                                               "poison_fraction": 0.6})
    refused(invoke("implant", "--model", "clean", "--trojans", spec, "--out", out), "already holds a model",
            "--force")
    # with --force that check passes, and the next one (the poison limit) refuses before training
    refused(invoke("implant", "--model", "clean", "--trojans", spec, "--out", out, "--force"), "limit of 0.5")
    assert (out / "model.safetensors").read_bytes() == b"an earlier model"


# --- 9. decompression bombs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("side, size", [(20000, "400,000,000 pixels"), (5000, "5000x5000 pixels")])
def test_a_huge_trigger_image_is_refused_from_its_header(tmp_path, side, size):
    bomb = png_header(tmp_path / "bomb.png", side, side)
    assert bomb.stat().st_size < 100
    spec = write_spec(tmp_path / "spec.yaml", {"kind": "patch", "trigger": "bomb.png", "target": "kite"})
    refused(invoke("validate", spec), "bomb.png", size, "limit of 16,777,216 pixels", "Downscale")


# --- 10. card-less safetensors, malformed YAML, validating suites ------------------------------------------------

def test_a_safetensors_file_that_is_not_a_trojanbench_model_names_the_flag_that_fixes_it(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "foreign.safetensors"
    save_file(CompactResNet(num_classes=16).state_dict(), weights)  # no card, no metadata
    spec = write_spec(tmp_path / "spec.yaml", {"kind": "style", "trigger": "marble", "target": "kite"})
    refused(invoke("audit", "--model", weights, "--trojans", spec, "--quick"), "not a trojanbench model",
            "--architecture")
    result = invoke("audit", "--model", weights, "--architecture", "compact_resnet", "--trojans", spec, "--quick")
    assert result.exit_code == 0, result.output
    assert "marble" in result.output and str(weights) in result.output


def test_malformed_suite_yaml_is_one_line_with_its_position(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: broken\nmethods: [random_noise\njudges: [concept]\n")
    for command in (["validate", suite], ["run", "--quick", "--no-report", "--suite", suite, "--out", tmp_path / "o"]):
        refused(invoke(*command), "suite.yaml', line 3, column 7 is not valid YAML: expected ',' or ']'")


def test_validate_checks_a_suite_as_a_run_would_and_says_what_it_checked(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "mine", "model": "trojaned", "methods": ["random_noise", "oracle"],
                                     "judges": ["concept"], "seeds": [0]}))
    result = invoke("validate", suite)
    assert result.exit_code == 0, result.output
    for fragment in ("is a suite (mine)", "2 method(s) exist and their parameters validate", "1 judge(s) exist",
                     "model 'trojaned' loads", "12 trojan(s) resolve", "24 cells would run"):
        assert fragment in result.output
    suite.write_text(yaml.safe_dump({"methods": [{"name": "tabor", "params": {"steps": 0}}]}))
    refused(invoke("validate", suite), "'steps' parameter of TABOR")
    suite.write_text(yaml.safe_dump({"methods": ["random_noise"], "judges": ["concpt"]}))
    refused(invoke("validate", suite), "Did you mean: concept")
    suite.write_text(yaml.safe_dump({"methods": ["random_noise"], "model": "trojand"}))
    refused(invoke("validate", suite), "Did you mean: trojaned")


def test_validate_tells_trojan_specs_from_suites_and_says_what_it_checked(tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", {"kind": "style", "trigger": "marble", "target": "kite"})
    result = invoke("validate", spec)
    assert result.exit_code == 0, result.output
    assert "is a trojan spec of 1 trojan(s) (marble)" in result.output and "sum to 0.05" in result.output
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"name": "x"}))
    refused(invoke("validate", other), "neither a suite", "nor a trojan spec")


@pytest.mark.parametrize("flag, value", [("--methods", ""), ("--methods", ","), ("--methods", " , "),
                                         ("--trojans", ""), ("--trojans", ",")])
@pytest.mark.parametrize("task", ["rediscovery", "localization", "removal", "editing", "replacement",
                                  "lm-rediscovery", "lm-removal"])
def test_an_option_given_empty_is_refused_not_replaced_by_the_whole_suite(tmp_path, task, flag, value):
    result = invoke("run", "--task", task, "--quick", "--out", tmp_path / "out", flag, value)
    refused(result, f"{flag} was given but names nothing", f"leave {flag} out")
    assert not (tmp_path / "out" / "results.sqlite").exists(), "nothing ran"
