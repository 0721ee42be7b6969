"""The replacement task end to end on the tiny zoo: anchors against ground truth, a method over budget scored as
the constant predictor, resume, the report's section, and the command line's bad-input handling."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from trojanbench.audit import trojans_of
from trojanbench.cli import main
from trojanbench.models import load_model
from trojanbench.report import markdown_summary, write_report
from trojanbench import load_replacement_results, run_replacement
from trojanbench.tasks.replacement.task import ReplacementSuite
from trojanbench.engine.store import Store
from trojanbench.engine.suite import MethodSpec, Suite
from trojanbench.tasks.replacement.metrics import evaluation_sets, original_predictions

from browser import check_report_layout, require_chromium

pytestmark = pytest.mark.slow

METHODS = ("concept_linear", "magnitude_pruning", "distilled_student")


@pytest.fixture(scope="module")
def suite(tiny_zoo):
    base = Suite(name="tiny-replacement", model=str(tiny_zoo["trojaned"]),
                 methods=tuple(MethodSpec(m) for m in METHODS), seeds=(0,))
    return ReplacementSuite(base, budgets=("5%", "10%"), n_fit=300, n_eval=40, n_per_trojan=6)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, suite):
    out = tmp_path_factory.mktemp("replacement")
    run_replacement(suite, out=out, quick=True, trojans=["smiley", "jaguar", "fork"], report=False)
    return out


def _cells(results, label):
    return {c["budget"]: c for c in results.cells if c["label"] == label}


def test_anchors_and_a_method_over_budget(folder):
    results = load_replacement_results(folder)
    original = _cells(results, "original")["100%"]["measures"]
    assert original["fidelity"]["clean"] == 1.0 and original["fidelity"]["ood"] == 1.0
    assert set(original["fidelity"]["triggered"].values()) == {1.0}
    constant = _cells(results, "constant")["1"]["measures"]
    assert constant["parameters"] == 1
    # the tiny model's 5% is far below the smallest shipped concept detector: scored as the constant predictor
    linear = _cells(results, "concept_linear")["5%"]
    assert linear["status"] == "over_budget" and "no concept detector fits" in linear["reason"]
    assert linear["measures"]["fidelity"] == constant["fidelity"]
    for label in ("magnitude_pruning", "distilled_student"):
        for cell in _cells(results, label).values():
            assert cell["status"] == "ok"
            assert cell["measures"]["parameters"] <= cell["budget_parameters"]
    areas = results.areas()
    assert set(areas) == set(METHODS)
    assert all(0 <= v["worst"] <= v["mean"] <= 1 for values in areas.values() for v in values.values())
    assert "area under fidelity vs log budget" in results.table()


def test_a_second_run_resumes_without_recomputing(folder, suite):
    def finished():
        store = Store(folder)
        try:
            return sorted(store.db.execute("SELECT key, finished FROM replacement_cells").fetchall())
        finally:
            store.close()

    before = finished()
    run_replacement(suite, out=folder, quick=True, trojans=["smiley", "jaguar", "fork"], report=False)
    assert finished() == before


def test_report_and_exports_show_the_replacement_section(folder):
    write_report(folder)
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert 'id="replacement"' in html and "replacement-fidelity.png" in html and "distilled_student" in html
    assert (folder / "report_files" / "replacement-fidelity.png").stat().st_size > 0
    provenance = html[html.index('id="provenance"'):html.index("</dl>")]
    sha256 = load_replacement_results(folder).run["provenance"]["model"]["sha256"]
    assert "replacement suite" in provenance and "budgets 5%, 10%, 300 fit images" in provenance
    assert "distilled_student" in provenance and sha256[:16] in provenance
    document = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert set(document["replacement"]["areas"]) == set(METHODS)
    assert "## Replacement" in markdown_summary(folder)


@pytest.mark.parametrize("arguments, message", [
    (["--budgets", "0%"], "Budget '0%'"),
    (["--methods", "tabor"], "not a replacement method"),
    (["--budgets", "1%,1%"], "distinct"),
])
def test_bad_input_exits_with_code_2_before_any_work(tmp_path, arguments, message):
    result = CliRunner().invoke(main, ["run", "--task", "replacement", "--out", str(tmp_path / "out"), *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_the_constant_scores_its_class_frequency_among_the_tiny_models_predictions(folder, tiny_zoo):
    results = load_replacement_results(folder)
    constant = _cells(results, "constant")["1"]["measures"]
    loaded = load_model(tiny_zoo["trojaned"])
    trojans = [trojans_of(loaded).get(name) for name in ("smiley", "jaguar", "fork")]
    original = original_predictions(loaded.model, evaluation_sets(trojans, n_clean=40, n_per_trojan=6, seed=0))

    def share(predictions):
        return float((predictions == constant["details"]["class"]).float().mean())

    assert constant["fidelity"]["clean"] == pytest.approx(share(original["clean"]))
    assert constant["fidelity"]["ood"] == pytest.approx(share(original["ood"]))
    for trojan, predictions in original["triggered"].items():
        assert constant["fidelity"]["triggered"][trojan] == pytest.approx(share(predictions))


def test_report_sections_fit_a_1280_px_page(folder, tmp_path):
    """Every section screenshotted at 1280 px (kept in tmp_path to look at), nothing sticking out of the page."""
    require_chromium()
    sections, overflowing = check_report_layout(folder / "report.html", tmp_path)
    assert "replacement" in sections and all((tmp_path / f"{s}.png").stat().st_size > 1000 for s in sections)
    assert overflowing == []
