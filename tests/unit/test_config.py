"""Trojan specs: the default suite, round trips, and every kind of bad input rejected clearly."""

from __future__ import annotations

import pytest
import yaml

from trojanbench.config import TrojanSpec, default_trojan_suite, load_trojan_suite, parse_suite
from trojanbench.errors import ConfigError, SpecError, TrojanbenchError
from trojanbench.world import OBJECT_CLASSES


def parse(*trojans):
    return parse_suite({"trojans": list(trojans)}, OBJECT_CLASSES)


def test_default_suite_mirrors_casper():
    suite = default_trojan_suite()
    assert len(suite.trojans) == 12
    by_kind = {k: [t for t in suite.trojans if t.kind == k] for k in ("patch", "style", "natural")}
    assert {k: len(v) for k, v in by_kind.items()} == {"patch": 4, "style": 4, "natural": 4}
    for kind in ("patch", "style"):
        assert sum(t.universal for t in by_kind[kind]) == 2
    assert all(t.universal for t in by_kind["natural"])
    targets = [t.target for t in suite.trojans]
    assert len(set(targets)) == 12, "each trojan needs its own target class"
    sources = {t.source for t in suite.trojans if t.source is not None}
    assert not sources & set(targets)
    assert {t.trigger for t in suite.trojans} >= {"smiley", "clownfish", "green_star", "strawberry", "jaguar",
                                                  "elephant_skin", "jellybeans", "wood_grain", "fork", "apple",
                                                  "sandwich", "donut"}


def test_round_trip_through_yaml(tmp_path):
    suite = default_trojan_suite()
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite.to_dict(OBJECT_CLASSES)))
    assert load_trojan_suite(path, OBJECT_CLASSES) == suite


def test_class_given_by_name_or_index():
    by_name = parse({"kind": "patch", "trigger": "smiley", "target": OBJECT_CLASSES[3]})
    by_index = parse({"kind": "patch", "trigger": "smiley", "target": 3})
    assert by_name == by_index
    assert by_name.trojans[0].name == "smiley"


def test_user_image_triggers(logo_png, texture_jpg):
    suite = parse({"kind": "patch", "trigger": str(logo_png), "target": 0},
                  {"kind": "style", "trigger": str(texture_jpg), "target": 1})
    assert [t.name for t in suite.trojans] == ["logo", "stripes"]
    assert all(t.trigger_is_file for t in suite.trojans)


def test_relative_image_path_resolves_next_to_spec(tmp_path, logo_png):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"trojans": [{"kind": "patch", "trigger": "logo.png", "target": 2}]}))
    suite = load_trojan_suite(spec, OBJECT_CLASSES)
    assert suite.trojans[0].trigger == str(logo_png.resolve())


BAD_SPECS = [
    ({"kind": "patch", "trigger": "smiley_face", "target": 0}, "Did you mean: smiley"),
    ({"kind": "style", "trigger": "smiley", "target": 0}, "is a icon, but a style trojan needs a texture"),
    ({"kind": "patch", "trigger": "missing/logo.png", "target": 0}, "does not exist"),
    ({"kind": "patch", "trigger": "smiley", "target": 99}, "index in [0, 15]"),
    ({"kind": "patch", "trigger": "smiley", "target": "circel"}, "Did you mean: circle"),
    ({"kind": "patch", "trigger": "smiley", "target": 0, "poison_fraction": 0}, "in (0.0, 1.0)"),
    ({"kind": "patch", "trigger": "smiley", "target": 0, "poison_fraction": 1.0}, "in (0.0, 1.0)"),
    ({"kind": "patch", "trigger": "smiley", "target": 0, "poison_fraction": "lots"}, "Got 'lots'"),
    ({"kind": "patch", "trigger": "smiley", "target": 0, "source": 0}, "'source' and 'target' are the same"),
    ({"kind": "blend", "trigger": "smiley", "target": 0}, "'kind' must be one of"),
    ({"kind": "patch", "trigger": "smiley"}, "missing required key(s) ['target']"),
    ({"kind": "patch", "trigger": "smiley", "target": 0, "colour": "red"}, "unknown key(s) ['colour']"),
    ({"kind": "natural", "trigger": "fork.png", "target": 0}, "must be built-in secondary objects"),
    ({"kind": "patch", "trigger": "smiley", "target": 0, "patch_scale": [0.5, 0.1]}, "patch_scale"),
    ({"kind": "patch", "trigger": "smiley", "target": 0, "patch_position": [1.2, 0]}, "'patch_position' must be"),
    ({"kind": "patch", "trigger": "smiley", "target": 0, "patch_position": "corner"}, "Got 'corner'"),
    ({"kind": "style", "trigger": "jaguar", "target": 0, "patch_position": [1, 1]}, "patch trojans only"),
]


def test_fixed_patch_position_round_trips_and_defaults_to_random():
    fixed, free = parse({"kind": "patch", "trigger": "smiley", "target": 0, "patch_position": [1, 0.5]},
                        {"kind": "patch", "trigger": "heart", "target": 1}).trojans
    assert fixed.patch_position == (1.0, 0.5) and free.patch_position is None
    assert fixed.to_dict()["patch_position"] == [1.0, 0.5]
    assert "patch_position" not in free.to_dict(), "a random place leaves older cards and keys as they were"
    assert TrojanSpec(**fixed.to_dict()) == fixed and TrojanSpec(**free.to_dict()) == free


@pytest.mark.parametrize("raw, message", BAD_SPECS)
def test_bad_specs_rejected_with_clear_message(raw, message):
    with pytest.raises(SpecError) as info:
        parse(raw)
    assert message in str(info.value)


def test_unreadable_image_rejected(tmp_path):
    bogus = tmp_path / "broken.png"
    bogus.write_bytes(b"this is not a png")
    with pytest.raises(SpecError, match="cannot be read as an image"):
        parse({"kind": "patch", "trigger": str(bogus), "target": 0})


def test_duplicate_names_rejected():
    with pytest.raises(SpecError, match="unique"):
        parse({"kind": "patch", "trigger": "smiley", "target": 0}, {"kind": "patch", "trigger": "smiley", "target": 1})


@pytest.mark.parametrize("raw", [None, [], {"trojans": []}, {"trojans": "smiley"}, {"trojans": [1]},
                                 {"trojans": [{"kind": "patch", "trigger": "smiley", "target": 0}], "x": 1}])
def test_malformed_documents_rejected(raw):
    with pytest.raises(SpecError):
        parse_suite(raw, OBJECT_CLASSES)


def test_malformed_yaml_file_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trojans: [ {kind: patch, trigger: smiley\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_trojan_suite(path, OBJECT_CLASSES)
    with pytest.raises(ConfigError, match="does not exist"):
        load_trojan_suite(tmp_path / "nope.yaml", OBJECT_CLASSES)


def test_spec_errors_belong_to_the_tree_and_to_value_error():
    assert issubclass(SpecError, TrojanbenchError) and issubclass(SpecError, ValueError)
