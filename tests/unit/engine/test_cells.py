"""Cell keys change with the code that computes the cell, not only with the package version, and with the
content of a user's trigger image."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys

from trojanbench import __version__
from trojanbench.config import TrojanSpec
from trojanbench.registry import get_method
from trojanbench.engine.cells import Cell, _source_digest, code_version

SPEC = TrojanSpec(name="smiley", kind="patch", trigger="smiley", target=6)


def _plugin_class(path, body: str, monkeypatch):
    path.write_text(f"class Tool:\n    value = {body!r}\n")
    spec = importlib.util.spec_from_file_location(f"plugin_{abs(hash(body))}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module.Tool


def test_built_in_methods_carry_the_package_version_and_source_digest():
    version = code_version(get_method("tabor"))
    assert version == code_version() and version.startswith(f"{__version__}+") and len(version.split("+")[1]) == 12


def test_a_plugin_edit_changes_its_cells_keys(tmp_path, monkeypatch):
    path = tmp_path / "my_plugin.py"
    before = code_version(_plugin_class(path, "old", monkeypatch))
    _source_digest.cache_clear()
    after = code_version(_plugin_class(path, "new", monkeypatch))
    assert before.startswith(code_version() + "+") and before != after
    cell = Cell(method="my_plugin:Tool", params={}, trojan=SPEC, seed=0, n_images=2, model_sha256="x",
                code_version=before)
    assert dataclasses.replace(cell, key="", code_version=after).key != cell.key


def test_editing_a_trigger_image_changes_its_cells_key(logo_png):
    """A resumed run must not reuse results computed from the old picture at the same path."""
    def key():
        spec = TrojanSpec(name="logo", kind="patch", trigger=str(logo_png), target=0)
        return Cell(method="tabor", params={}, trojan=spec, seed=0, n_images=2, model_sha256="x").key

    original = logo_png.read_bytes()
    before = key()
    logo_png.write_bytes(original[:-1] + b"\x00")
    assert key() != before
    logo_png.write_bytes(original)
    assert key() == before
