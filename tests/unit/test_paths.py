"""``writable_folder``: the one check of an output folder, made before any work (and importable without torch)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import trojanbench.paths
from trojanbench.errors import ConfigError
from trojanbench.paths import writable_folder


def test_new_and_existing_folders_pass_and_nothing_is_created(tmp_path):
    assert writable_folder(tmp_path, "--out") == tmp_path
    assert writable_folder(tmp_path / "a" / "b", "--out") == tmp_path / "a" / "b"
    assert list(tmp_path.iterdir()) == []


def test_a_file_or_a_path_under_a_file_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"--out '.*file' is a file, not a folder"):
        writable_folder(blocker, "--out")
    with pytest.raises(ConfigError, match=r"'.*file/sub/deeper' is inside '.*file', which is a file"):
        writable_folder(blocker / "sub" / "deeper", "--out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(ConfigError, match="is not writable"):
            writable_folder(tmp_path, "out_dir")
        with pytest.raises(ConfigError, match="cannot be created"):
            writable_folder(tmp_path / "new", "out_dir")
    finally:
        tmp_path.chmod(0o755)


def test_it_imports_only_the_standard_library_and_the_error_tree():
    tree = ast.parse(Path(trojanbench.paths.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {f"{'.' * node.level}{node.module}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"__future__", "os", "pathlib", ".errors"}
