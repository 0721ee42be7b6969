"""The localization task end to end on the tiny zoo: cells in the store, resume, failures, bad input, the
report's section (checked through an HTML parser against the store) and the command line."""

from __future__ import annotations

import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from trojanbench.cli import main
from trojanbench.errors import MethodError
from trojanbench.methods.attribution import AttributionMethod
from trojanbench.report import markdown_summary
from trojanbench import load_localization_results, run, run_localization
from trojanbench.tasks.localization import task as runner_module
from trojanbench.tasks.localization.store import LocalizationStore as Store
from trojanbench.tasks.localization.metrics import METRICS

from test_runner import write_suite

pytestmark = pytest.mark.slow
pytest.importorskip("captum")

SMILEY = [{"name": "smiley", "kind": "patch", "trigger": "smiley", "target": "bowtie"}]
BROKEN = "test_localization_run:Broken"
METHODS = ["saliency", "input_x_gradient", "edge_detector", "uniform_map", "random_map", BROKEN]
RANGES = {"rank_correlation": (-1.0, 1.0), "pointing_game": (0.0, 1.0), "auroc": (0.0, 1.0)}


class Broken(AttributionMethod):
    """An attribution plugin that always fails: the run must record it and go on."""

    name = "broken_attribution_for_test"
    paper = "test fixture"

    def _attribute(self, model, images, target_class, generator):
        raise MethodError("this attribution always fails")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def suite(tiny_zoo, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("localization")
    return write_suite(folder / "suite.yaml", tiny_zoo["trojaned"], METHODS, seeds=(0,), trojans=SMILEY)


@pytest.fixture(scope="module")
def finished(suite) -> Path:
    out = suite.parent / "out"
    run_localization(suite, out=out)
    return out


class _Page(HTMLParser):
    """Text of the page, image sources, and the rows of the table with id ``localization-table``."""

    def __init__(self):
        super().__init__()
        self.text, self.images, self.rows = [], [], []
        self._in_table, self._row, self._cell = False, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "table":
            self._in_table = attrs.get("id") == "localization-table"
        elif tag == "tr" and self._in_table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "table":
            self._in_table = False

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _page(folder: Path) -> _Page:
    page = _Page()
    page.feed((folder / "report.html").read_text(encoding="utf-8"))
    return page


def _store_means(folder: Path, metric: str) -> dict[str, float]:
    """Mean over trojans of the mean over images, straight from the store's tables."""
    store = Store(folder, create=False)
    scores = store.localization_scores()
    per_trojan: dict[str, dict[str, list[float]]] = {}
    for cell in store.localization_cells():
        if cell.status != "ok":
            continue
        per_trojan.setdefault(cell.method, {}).setdefault(cell.trojan, []).extend(scores[cell.key][metric])
    store.close()
    return {m: float(np.mean([np.nanmean(v) for v in by_trojan.values()])) for m, by_trojan in per_trojan.items()}


def test_every_method_and_trojan_is_stored_with_scores_in_range(finished):
    results = load_localization_results(finished)
    assert {(c.method, c.trojan) for c in results.cells} == {(m, "smiley") for m in METHODS}
    by_method = {c.method: c for c in results.cells}
    assert by_method[BROKEN].status == "failed" and "always fails" in by_method[BROKEN].reason
    assert all(c.status == "ok" for m, c in by_method.items() if m != BROKEN)
    for record in results.records():
        if record["status"] != "ok":
            assert all(np.isnan(record[metric]) for metric in RANGES), "a failed cell's records carry no scores"
            continue
        for metric, (low, high) in RANGES.items():
            assert low <= record[metric] <= high, (record["method"], metric, record[metric])
    assert len(results.records()) == len(METHODS) * 4
    assert results.summaries["uniform_map"]["auroc"].mean == pytest.approx(0.5)
    broken = results.summaries[BROKEN]["auroc"]
    assert np.isnan(broken.mean) and broken.n_images == 0, "a failed cell is never scored (not even as chance)"
    rows = {row["method"]: row for row in results.rows()}
    assert rows[BROKEN]["rank"] is None and rows[BROKEN]["failed"] == 1, "a tool with a failed cell is not ranked"
    assert "1 failed cell(s), not scored" in results.table()
    (image_set,) = results.sets.values()
    assert image_set["n_images"] == 4 and (finished / "images" / image_set["image_file"]).is_file()
    assert "edge detector" in results.verdict()


def test_a_rerun_recomputes_nothing(finished, suite, monkeypatch):
    before = {c.key: c for c in load_localization_results(finished).cells}
    calls = []
    monkeypatch.setattr(runner_module, "score_attribution", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(runner_module, "localization_set", lambda *a, **k: calls.append(a))
    again = run_localization(suite, out=finished, report=False)
    assert calls == [], "finished cells must not be recomputed, nor their image sets drawn again"
    assert {c.key: c for c in again.cells} == before


@pytest.mark.parametrize("methods, message", [
    ("[saliencey]", "Unknown attribution method 'saliencey'. Did you mean: saliency?"),
    ("[tabor]", "not an attribution method"),
    ("[{name: occlusion, params: {strides: 2}}]", "has no parameter(s) ['strides']"),
    ("[{name: lime, params: {n_samples: 0}}]", "The 'n_samples' parameter"),
])
def test_bad_methods_are_rejected_before_any_work(tmp_path, methods, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: x\nmethods: {methods}\n")
    result = CliRunner().invoke(main, ["run", "--task", "localization", "--suite", str(path),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_non_patch_trojans_and_ray_are_rejected(suite, tmp_path):
    style = CliRunner().invoke(main, ["run", "--task", "localization", "--trojans", "jaguar",
                                      "--out", str(tmp_path / "out")])
    assert style.exit_code == 2 and "is a style trojan" in style.output
    ray = CliRunner().invoke(main, ["run", "--task", "localization", "--suite", str(suite), "--executor", "ray",
                                    "--out", str(tmp_path / "out")])
    assert ray.exit_code == 2 and "rediscovery task" in ray.output
    assert not (tmp_path / "out").exists()


def test_report_section_shows_the_stores_numbers(finished):
    results = load_localization_results(finished)
    page = _page(finished)
    text = " ".join(page.text)
    assert "Localization" in text and results.verdict() in " ".join(text.split())
    assert "Leaderboard" not in text and "Gallery" not in text, "no rediscovery sections without its results"
    header = page.rows[1]  # the second header row: mean, 95% interval, worst (trojan) per metric
    assert header[:3] == ["mean", "95% interval", "worst (trojan)"]
    rows = {row[1]: row for row in page.rows[2:]}
    assert set(rows) == set(METHODS)
    for index, metric in enumerate(METRICS):
        for method, mean in _store_means(finished, metric).items():
            summary = results.summaries[method][metric]
            assert math.isclose(summary.mean, mean, abs_tol=1e-12)
            cells = rows[method][3 + 3 * index: 6 + 3 * index]
            assert cells[0] == f"{mean:.3f}", (method, metric)
            assert cells[1] == f"[{summary.ci_low:.2f}, {summary.ci_high:.2f}]"
            assert cells[2] == f"{summary.worst:.3f} ({summary.worst_trojan})"
    assert "this attribution always fails" in text, "failed cells are listed with their reasons"
    for src in page.images:
        assert (finished / src).is_file(), f"image {src} referenced by the report must exist"
    assert "report_files/localization-boxplots.png" in page.images
    assert "| saliency | tool |" in markdown_summary(finished)
    assert (finished / "localization.csv").read_text().count("\n") == 1 + len(METHODS) * 4


def test_cli_quick_run_exits_0_and_prints_the_table(suite, tmp_path):
    result = CliRunner().invoke(main, ["run", "--task", "localization", "--quick", "--suite", str(suite),
                                       "--out", str(tmp_path / "quick"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "edge_detector" in result.output and "edge detector by mean AUROC" in result.output
    assert (tmp_path / "quick" / "report.html").is_file()


def test_one_folder_holds_both_tasks(tiny_zoo, suite, tmp_path):
    rediscovery = write_suite(tmp_path / "rediscovery.yaml", tiny_zoo["trojaned"], ["random_noise"], seeds=(0,),
                              trojans=SMILEY, judges=("concept",))
    run(rediscovery, out=tmp_path / "both", report=False)
    run_localization(suite, out=tmp_path / "both", methods=["edge_detector", "uniform_map"])
    text = " ".join(_page(tmp_path / "both").text)
    assert "Leaderboard — judge: concept" in text and "Localization — attribution tools" in text
    summary = markdown_summary(tmp_path / "both")
    assert "## Judge: concept" in summary and "## Localization" in summary
