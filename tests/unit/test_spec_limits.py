"""Trojan specs that no training run can honour, and YAML errors in one line."""

from __future__ import annotations

import pytest

from trojanbench.config import MAX_TOTAL_POISON, check_poison_budget, default_trojan_suite, load_yaml, parse_suite
from trojanbench.errors import ConfigError, SpecError
from trojanbench.world import OBJECT_CLASSES


def suite_of(*trojans: dict):
    return parse_suite({"trojans": list(trojans)}, OBJECT_CLASSES)


def test_the_default_trojans_fit_the_poison_limit():
    total = check_poison_budget(default_trojan_suite())
    assert total == pytest.approx(0.44) and total <= MAX_TOTAL_POISON


def test_a_suite_over_the_poison_limit_parses_but_cannot_be_implanted():
    greedy = suite_of(*({"name": f"t{i}", "kind": "style", "trigger": texture, "target": i, "poison_fraction": 0.2}
                        for i, texture in enumerate(["marble", "jaguar", "zebra"])))
    with pytest.raises(SpecError, match=r"sum to 0\.6, above the limit of 0\.5"):
        check_poison_budget(greedy)  # a card of trojans implanted over several runs still parses


def test_one_trigger_cannot_lead_to_two_classes():
    with pytest.raises(SpecError, match=r"'x' and 'y' both use the trigger 'fork' .*\(kite, circle\)"):
        suite_of({"name": "x", "kind": "natural", "trigger": "fork", "target": "kite"},
                 {"name": "y", "kind": "natural", "trigger": "fork", "target": "circle"})
    both = suite_of({"name": "x", "kind": "patch", "trigger": "smiley", "target": "kite", "source": "square"},
                    {"name": "y", "kind": "patch", "trigger": "smiley", "target": "kite", "source": "ellipse"})
    assert both.names() == ["x", "y"]  # the same target from two sources is one meaning


def test_malformed_yaml_is_one_line_with_file_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError) as raised:
        load_yaml(path)
    assert str(raised.value) == (f"File {str(path)!r}, line 3, column 2 is not valid YAML: expected ',' or ']', "
                                 f"but got ':'.")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_yaml(path)
