"""The removal task end to end on the shipped zoo: guidance read from a rediscovery run in the same folder,
edits in the store, anchors (no-op, oracle, random), a destructive procedure punished on the clean model,
resume, the report's section and exports, and the command line's bad-input handling."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from click.testing import CliRunner

from trojanbench.cli import main
from trojanbench.methods.editing import RemovalProcedure
from trojanbench.report import markdown_summary, write_report
from trojanbench import load_removal_results, run, run_removal
from trojanbench.engine.store import Store

from browser import check_report_layout, require_chromium

pytestmark = pytest.mark.slow

DESTROYER = "test_removal_run:Destroyer"
METHODS = ["identity", "unlearning", DESTROYER]


class Destroyer(RemovalProcedure):
    """Zeroes every weight: attack success goes, and so does everything else."""

    name = "destroyer_for_test"
    paper = "test fixture"
    uses_guidance = False
    per_target = False

    @torch.no_grad()
    def _remove(self, model, data, guidance, target_class, seed):
        for parameter in model.parameters():
            parameter.zero_()
        return model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder holding one rediscovery cell (dataset exemplars for ``smiley``), then a quick removal run."""
    out = tmp_path_factory.mktemp("removal")
    run(out=out, methods=["dataset_exemplars"], trojans=["smiley"], seeds=1, report=False)
    run_removal(out=out, quick=True, trojans=["smiley"], methods=METHODS, budgets=["100"], report=False)
    return out


def test_every_guidance_source_is_an_edit_and_all_finish(folder):
    results = load_removal_results(folder)
    edits = {(c.procedure, c.source, c.model_role, c.trojan) for c in results.cells}
    for source in ("none", "random"):
        assert ("unlearning", source, "trojaned", None) in edits and ("unlearning", source, "clean", None) in edits
    assert ("unlearning", "oracle", "trojaned", "smiley") in edits
    assert ("unlearning", "dataset_exemplars", "trojaned", "smiley") in edits  # read from the rediscovery run
    assert ("unlearning", "dataset_exemplars", "clean", "smiley") not in edits  # tool images belong to the trojaned model
    assert (DESTROYER, "-", "clean", None) in edits
    assert all(c.status == "ok" for c in results.cells)
    assert results.budgets == ["100"] and results.trojans == ["smiley"]


def test_anchors_score_as_defined(folder):
    results = load_removal_results(folder)
    values = results.per_trojan("100")
    cell = ("smiley", 0)
    assert values[("identity", "-")]["fidelity"][cell] == 0.0
    assert values[("identity", "-")]["der"][cell] == 0.5
    normalized = results.normalized("100")
    assert normalized[("unlearning", "oracle")].value == pytest.approx(1.0)
    assert normalized[("unlearning", "random")].value == pytest.approx(0.0)
    assert values[("unlearning", "oracle")]["attack_success"][cell] < 0.3 < values[("identity", "-")]["attack_success"][cell]


def test_a_destructive_procedure_is_punished_on_the_clean_model(folder):
    results = load_removal_results(folder)
    damage = results.clean_damage("100")
    assert damage[(DESTROYER, "-")] < -0.5
    assert damage[("identity", "-")] == 0.0
    clean = results.per_trojan("100", "clean")
    assert clean[(DESTROYER, "-")]["der"][("smiley", 0)] < 0.1
    assert clean[("identity", "-")]["der"][("smiley", 0)] == 0.5
    # on the trojaned model the attack is gone too, but fidelity counts the accuracy lost with it
    trojaned = results.per_trojan("100")
    assert trojaned[(DESTROYER, "-")]["fidelity"][("smiley", 0)] < 0.2


def test_a_second_run_resumes_without_recomputing(folder):
    store = Store(folder)
    try:
        before = store.db.execute("SELECT key, finished FROM removal_cells").fetchall()
    finally:
        store.close()
    run_removal(out=folder, quick=True, trojans=["smiley"], methods=METHODS, budgets=["100"], report=False)
    store = Store(folder)
    try:
        after = store.db.execute("SELECT key, finished FROM removal_cells").fetchall()
    finally:
        store.close()
    assert sorted(before) == sorted(after)


def test_report_and_exports_show_the_removal_tables(folder):
    write_report(folder)
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert 'id="removal"' in html and "unlearning &lt;- oracle" in html and "Budget 100" in html
    results = load_removal_results(folder)
    with (folder / "removal.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(len(results._scores[c.key]) for c in results.cells if c.status == "ok")
    document = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    labels = {(r["procedure"], r["source"]) for r in document["removal"]["budgets"]["100"]["rows"]}
    assert ("unlearning", "dataset_exemplars") in labels
    assert "## Removal" in markdown_summary(folder)
    figure = next((folder / "report_files").glob("removal-*.png"))
    assert figure.stat().st_size > 1000


def test_a_folder_without_rediscovery_runs_the_controls_and_says_so(tmp_path):
    results = run_removal(out=tmp_path, quick=True, trojans=["smiley"], methods=["identity", "unlearning"],
                          budgets=["100"], report=False)
    assert {c.source for c in results.cells} == {"-", "none", "random", "oracle"}
    assert results.run["suite"]["missing_tools"] == ["smiley"]
    assert "no tool guidance" in results.verdict("100")


@pytest.mark.parametrize("args, words", [
    (["--task", "removal", "--budgets", "ten"], "data budget"),
    (["--task", "removal", "--methods", "tabor"], "not a removal procedure"),
    (["--task", "removal", "--methods", "unlearnin"], "Did you mean: unlearning"),
    (["--task", "rediscovery", "--budgets", "1%"], "--budgets applies to the removal and replacement tasks"),
    (["--task", "removal", "--executor", "ray"],
     "--executor applies to the lm-rediscovery, lm-removal and rediscovery tasks, not to the removal task"),
])
def test_cli_bad_input_exits_2_with_the_reason(tmp_path, args, words):
    result = CliRunner().invoke(main, ["run", *args, "--out", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert not (tmp_path / "out" / "results.sqlite").exists() or not load_removal_results(tmp_path / "out")


def test_a_run_stopped_before_its_first_edit_does_not_hide_the_last_results(folder, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    before = {c.key for c in load_removal_results(copy).cells}
    store = Store(copy)
    try:
        store.start_run({"task": "removal", "cell_keys": ["never-computed"]}, {})
    finally:
        store.close()
    assert {c.key for c in load_removal_results(copy).cells} == before


def test_report_sections_fit_a_1280_px_page(folder, tmp_path):
    """Every section screenshotted at 1280 px (kept in tmp_path to look at), nothing sticking out of the page."""
    require_chromium()
    sections, overflowing = check_report_layout(folder / "report.html", tmp_path)
    assert "removal" in sections and all((tmp_path / f"{s}.png").stat().st_size > 1000 for s in sections)
    assert overflowing == []
