"""Plugins from outside the package run through the same path as built-in tools: an installed
distribution with an entry point in group ``trojanbench.methods``, and a ``module:Class`` reference."""

from __future__ import annotations

import sys
import textwrap

import pytest
from click.testing import CliRunner

from trojanbench import registry
from trojanbench.cli import main
from trojanbench.testing import check_method

PLUGIN_SOURCE = textwrap.dedent('''
    import torch
    from trojanbench.methods import Interval, SynthesisMethod

    class GreyBoxes(SynthesisMethod):
        """A toy plugin: grey images with a bright box whose size is a hyperparameter."""
        name = "grey_boxes"
        paper = "plugin fixture"
        parameter_constraints = {"box": Interval(int, 1, 64)}

        def __init__(self, box: int = 8):
            self.box = box

        def _synthesize(self, target, target_class, n_images, generator, source_class):
            size = target.image_size
            images = torch.full((n_images, 3, size, size), 0.5)
            corners = torch.randint(0, size - self.box + 1, (n_images, 2), generator=generator)
            for image, (top, left) in zip(images, corners.tolist()):
                image[:, top:top + self.box, left:left + self.box] = 1.0
            return images
''')


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A distribution `tb-plugin-demo` on sys.path, as pip would install it, with an entry point."""
    site = tmp_path / "site"
    (site / "tb_plugin_demo").mkdir(parents=True)
    (site / "tb_plugin_demo" / "__init__.py").write_text(PLUGIN_SOURCE)
    info = site / "tb_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tb-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[trojanbench.methods]\ngrey_boxes = tb_plugin_demo:GreyBoxes\n")
    monkeypatch.syspath_prepend(str(site))
    saved = dict(registry.METHODS._entries)
    monkeypatch.setattr(registry.METHODS, "_loaded", False)
    yield
    registry.METHODS._entries.clear()
    registry.METHODS._entries.update(saved)
    sys.modules.pop("tb_plugin_demo", None)


def test_entry_point_plugin_is_listed_and_conforms(installed_plugin):
    assert "grey_boxes" in registry.method_names("synthesis")
    check_method(registry.get_method("grey_boxes"))
    listing = CliRunner().invoke(main, ["ls", "methods"], catch_exceptions=False).output
    assert "grey_boxes" in listing and "tb_plugin_demo" in listing


@pytest.mark.slow
@pytest.mark.parametrize("reference", ["grey_boxes", "tb_plugin_demo:GreyBoxes"])
def test_plugin_runs_through_the_synthesize_command(installed_plugin, tiny_zoo, tmp_path, reference):
    out = tmp_path / "images"
    result = CliRunner().invoke(main, ["synthesize", "--method", reference, "--model", str(tiny_zoo["trojaned"]),
                                       "--trojan", "smiley", "--n-images", "3", "--param", "box=5",
                                       "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (out / "grey_boxes__smiley__seed0.png").is_file()


def test_bad_plugin_parameter_is_rejected_cleanly(installed_plugin, tiny_zoo):
    result = CliRunner().invoke(main, ["synthesize", "--method", "grey_boxes", "--model", str(tiny_zoo["trojaned"]),
                                       "--param", "box=0"])
    assert result.exit_code == 2
    assert "The 'box' parameter of GreyBoxes must be an int in [1, 64]. Got 0 instead." in result.output


@pytest.mark.parametrize("reference, message", [("no_such_pkg_xyz:Tool", "Cannot import plugin module"),
                                                ("json:NoSuchClass", "has no attribute"),
                                                ("tabr", "Unknown synthesis method 'tabr'")])
def test_bad_method_references(reference, message):
    result = CliRunner().invoke(main, ["synthesize", "--method", reference])
    assert result.exit_code == 2 and message in result.output
