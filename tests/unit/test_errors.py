"""The exception tree: every error is a TrojanbenchError and the built-in it resembles."""

from __future__ import annotations

import pytest

from trojanbench import errors


@pytest.mark.parametrize("cls, builtin", [
    (errors.ConfigError, ValueError), (errors.SpecError, ValueError), (errors.CheckpointError, ValueError),
    (errors.UnsafeCheckpointError, ValueError), (errors.UnknownNameError, LookupError),
    (errors.MissingExtraError, ImportError)])
def test_tree(cls, builtin):
    assert issubclass(cls, errors.TrojanbenchError) and issubclass(cls, builtin)


def test_did_you_mean_lists_close_matches_and_all_choices():
    error = errors.did_you_mean("tabr", ["tabor", "snafue", "neural_cleanse"], "method")
    assert str(error) == ("Unknown method 'tabr'. Did you mean: tabor? "
                          "Available: neural_cleanse, snafue, tabor.")
    assert "Did you mean" not in str(errors.did_you_mean("zzz", ["tabor"], "method"))


def test_missing_extra_names_the_extra_to_install():
    with pytest.raises(errors.MissingExtraError, match=r"pip install 'trojanbench\[ray\]'"):
        errors.require_extra("surely_not_an_installed_module_xyz", "ray", "The Ray executor")
    assert errors.require_extra("json", "none", "JSON").dumps([]) == "[]"
