"""The editing task end to end on the shipped clean model: edits in the store, the unedited anchor, resume,
the report's section and the command line's bad-input handling."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from trojanbench.cli import main
from trojanbench.report import markdown_summary, write_report
from trojanbench import load_editing_results, run_editing
from trojanbench.engine.store import Store

from browser import check_report_layout, require_chromium

pytestmark = pytest.mark.slow

METHODS = ["rank_one_rewrite", "finetune_rule"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("editing")
    run_editing(out=out, quick=True, trojans=["zebra_square"], methods=METHODS, report=False)
    return out


def test_each_editor_implants_the_rule_and_the_anchor_is_the_unedited_model(folder):
    results = load_editing_results(folder)
    assert {c["label"] for c in results.cells} == set(METHODS)
    assert all(c["status"] == "ok" for c in results.cells)
    per_rule = results.per_rule()
    cell = ("zebra_square", 0)
    assert per_rule["unedited"]["changed_parameters"][cell] == 0
    assert per_rule["unedited"]["clean_accuracy_change"][cell] == 0.0
    assert per_rule["rank_one_rewrite"]["changed_parameters"][cell] <= 16 * 32 * 4 + 16  # one layer: [W | b]
    assert per_rule["finetune_rule"]["success"][cell] > per_rule["unedited"]["success"][cell]
    labels = [row["label"] for row in results.rows()]
    assert labels[-1] == "unedited" and set(labels[:-1]) == set(METHODS)


def test_a_second_run_resumes_without_recomputing(folder):
    def finished():
        store = Store(folder)
        try:
            return sorted(store.db.execute("SELECT key, finished FROM editing_cells").fetchall())
        finally:
            store.close()

    before = finished()
    run_editing(out=folder, quick=True, trojans=["zebra_square"], methods=METHODS, report=False)
    assert finished() == before


def test_report_and_exports_show_the_editing_table(folder):
    write_report(folder)
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert 'id="editing"' in html and "rank_one_rewrite" in html
    document = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert {row["label"] for row in document["editing"]["rows"]} == {*METHODS, "unedited"}
    assert "## Editing" in markdown_summary(folder)


@pytest.mark.parametrize("args, words", [
    (["--methods", "unlearning"], "not a rule editor"),
    (["--trojans", "no_such_rule"], "no_such_rule"),
    (["--methods", "rank_one_rewrit"], "Did you mean: rank_one_rewrite"),
])
def test_cli_bad_input_exits_2_with_the_reason(tmp_path, args, words):
    result = CliRunner().invoke(main, ["run", "--task", "editing", *args, "--out", str(tmp_path / "out"),
                                       "--no-progress"])
    assert result.exit_code == 2, result.output
    assert words in result.output


def test_report_sections_fit_a_1280_px_page(folder, tmp_path):
    """Every section screenshotted at 1280 px (kept in tmp_path to look at), nothing sticking out of the page."""
    require_chromium()
    sections, overflowing = check_report_layout(folder / "report.html", tmp_path)
    assert "editing" in sections and all((tmp_path / f"{s}.png").stat().st_size > 1000 for s in sections)
    assert overflowing == []
