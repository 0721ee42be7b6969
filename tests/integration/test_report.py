"""The report, rendered from a small finished run: content checked through an HTML parser against the
store, exports checked, reproducibility from the store alone, and the page opened in headless Chromium."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from trojanbench.cli import main
from trojanbench.errors import ConfigError
from trojanbench.registry import get_method
from trojanbench.report import write_report
from trojanbench import load_results, run
from trojanbench.tasks.rediscovery.section import safe_name

from browser import Browser, check_report_layout, chromium_path, require_chromium
from test_runner import TWO_TROJANS, write_suite

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


class _Page(HTMLParser):
    """Collects text, image sources, links, table rows (all, and those of each table with an id)."""

    def __init__(self):
        super().__init__()
        self.text, self.images, self.rows, self._row, self._cell = [], [], [], None, None
        self.links, self.tables, self._table = [], {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs.get("href"))
        elif tag == "table":
            self._table = attrs.get("id")
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            if self._table:
                self.tables.setdefault(self._table, []).append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def finished_run(tiny_zoo, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    suite = write_suite(folder / "suite.yaml", tiny_zoo["trojaned"], ["random_noise", "dataset_exemplars", "oracle",
                                                                       "faulty_plugins:Raising"],
                        trojans=TWO_TROJANS, seeds=(0, 1))
    import sys

    sys.path.insert(0, str(FIXTURES))
    try:
        run(suite, out=folder / "out")
    finally:
        sys.path.remove(str(FIXTURES))
    return folder / "out"


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_report_shows_every_method_and_trojan_with_the_stores_numbers(finished_run):
    results = load_results(finished_run)
    page = _parse(finished_run / "report.html")
    text = " ".join(page.text)
    for cell in results.cells:
        assert cell.method in text and cell.trojan in text
    for judge in results.judges:
        summaries = results.summaries(judge)
        for method, summary in summaries.items():
            matching = [r for r in page.rows if len(r) > 4 and r[1] == method and r[3] == f"{summary.mean:.3f}"]
            assert matching, f"leaderboard row of {method} under {judge} must show mean {summary.mean:.3f}"
            # Each judge has its own table: a baseline at chance can show the same mean under both.
            assert any(f"{summary.worst:.3f} ({summary.worst_trojan})" in row for row in matching)
    assert "always crashes" in text, "failed cells are listed with their reasons"
    for src in page.images:
        assert (finished_run / src).is_file(), f"image {src} referenced by the report must exist"
    assert any(src.startswith("images/") for src in page.images)


def test_exports_hold_every_cell_and_judge(finished_run):
    results = load_results(finished_run)
    with (finished_run / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {"method", "trojan", "kind", "seed", "judge", "p_true", "top1", "status", "seconds"} <= set(rows[0])
    assert len(rows) == len(results.records())
    assert {r["status"] for r in rows} == {"ok", "failed"}
    document = json.loads((finished_run / "results.json").read_text())
    assert document["config"]["methods"] and document["provenance"]["model"]["sha256"]
    assert len(document["cells"]) == len(rows)
    assert set(document["validity"]) == set(results.judges)
    diagnosed = [r for r in rows if r["status"] == "ok" and r["role"] != "combination"]
    assert diagnosed and all(0 <= float(r["paste_success"]) <= 1 for r in diagnosed)
    assert all((r["trigger_match"] != "") == (r["kind"] == "patch") for r in diagnosed)
    for cell in results.cells:
        if cell.role != "combination":
            assert document["methods"][cell.method]["params"] == cell.params
    assert document["methods"]["oracle"]["paper"] == "baseline (ground truth)"


def test_report_is_reproduced_from_the_store_alone(finished_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    before = (copy / "report.html").read_text()
    shutil.rmtree(copy / "report_files")
    for name in ("report.html", "results.csv", "results.json"):
        (copy / name).unlink()
    result = CliRunner().invoke(main, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    assert (copy / "report.html").read_text() == before
    markdown = CliRunner().invoke(main, ["report", str(copy), "--format", "md"])
    assert markdown.exit_code == 0 and "| oracle | oracle |" in markdown.output


def test_report_of_a_folder_without_results_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "holds no results" in result.output


def test_report_opens_in_headless_chromium_without_broken_images_or_errors(finished_run):
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium (.ci/run installs it with apt-get)")
        pytest.skip("needs Debian's chromium (installed by .ci/run)")
    with Browser() as browser:
        check = browser.open_page((finished_run / "report.html").as_uri())
    assert check.image_count > 10
    assert check.broken_images == []
    assert check.console_errors == []
    assert check.screenshot.startswith(b"\x89PNG")


def test_write_report_is_the_python_api(finished_run):
    assert write_report(finished_run) == finished_run / "report.html"


def test_report_sections_fit_a_1280_px_page(finished_run, tmp_path):
    """Every section screenshotted at 1280 px (kept in tmp_path to look at), nothing sticking out of the page."""
    require_chromium()
    sections, overflowing = check_report_layout(finished_run / "report.html", tmp_path)
    assert "leaderboard-concept" in sections and all((tmp_path / f"{s}.png").stat().st_size > 1000 for s in sections)
    assert overflowing == []


def _num(value, digits=3):
    """A number as the report's ``num`` filter writes it."""
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def _first_seed_cells(results, method):
    seeds = {t: min(c.seed for c in results.cells if c.trojan == t) for t in {c.trojan for c in results.cells}}
    return [c for c in results.cells if c.method == method and c.seed == seeds[c.trojan]]


def test_every_method_has_a_tool_page_with_its_images_paper_trojans_and_scores(finished_run):
    results = load_results(finished_run)
    report = _parse(finished_run / "report.html")
    for method in results.roles():
        path = finished_run / "report_files" / "tools" / f"{safe_name(method)}.html"
        assert path.is_file(), f"{method} must have a tool page"
        assert path.relative_to(finished_run).as_posix() in report.links, "the report links to each tool page"
        page = _parse(path)
        text = " ".join(" ".join(page.text).split())
        for src in page.images:
            assert (path.parent / src).resolve().is_file(), f"image {src} of {method}'s page must exist"
        for cell in _first_seed_cells(results, method):
            assert cell.trojan in text
            if cell.image_file:
                assert f"../../images/{cell.image_file}" in page.images
            else:
                assert cell.reason in text, "a failed cell shows its reason"
        try:
            paper = get_method(method).paper
        except ConfigError:  # the fixture's plugin is importable during the run only
            paper = None
        if paper:
            assert paper in text
        for judge in results.judges:
            row = next(r for r in results.leaderboard(judge) if r["method"] == method)
            interval = f"[{_num(row['ci_low'], 2)}, {_num(row['ci_high'], 2)}]"
            shown = [r for r in page.rows if r[:1] == [judge]]
            assert shown and shown[0][2:6] == [_num(row["mean"]), interval,
                                               f"{_num(row['worst'])} ({row['worst_trojan']})", _num(row["top1"], 2)]


def test_report_shows_the_ground_truth_diagnostics_of_the_store(finished_run):
    results = load_results(finished_run)
    summaries = results.diagnostic_summaries()
    assert summaries, "the run computes the cells' diagnostics"
    page = _parse(finished_run / "report.html")
    rows = {r[0]: r for r in page.tables["diagnostics-table"][1:]}
    assert set(rows) == set(summaries)
    kinds = sorted({k for s in summaries.values() for k in s["paste_success"]["by_kind"]})
    for method, fields in summaries.items():
        row = rows[method]
        for index, name in enumerate(("target_rate", "paste_success", "trigger_match")):
            value = fields.get(name)
            expected = [_num(value["mean"]), f"[{_num(value['ci_low'], 2)}, {_num(value['ci_high'], 2)}]"] \
                if value else ["–", "–"]
            assert row[2 + 2 * index:4 + 2 * index] == expected, (method, name)
        assert row[8:8 + len(kinds)] == [_num(fields["paste_success"]["by_kind"].get(k)) for k in kinds]
    text = " ".join(" ".join(page.text).split())
    for cell in (c for c in results.cells if c.key in results.diagnostics):
        found = results.diagnostics[cell.key]
        if cell.seed == 0:  # the gallery's cells carry their diagnostics under the images
            assert f"→target {found['target_rate']:.2f} · pasted {found['paste_success']:.2f}" in text
            assert (found["trigger_match"] is None) == (cell.kind != "patch")


def test_report_of_a_store_without_diagnostics_still_builds(finished_run, tmp_path):
    copy = shutil.copytree(finished_run, tmp_path / "old")
    shutil.rmtree(copy / "report_files")
    with sqlite3.connect(copy / "results.sqlite") as db:
        db.execute("DROP TABLE diagnostics")
    write_report(copy)
    page = _parse(copy / "report.html")
    assert "diagnostics-table" not in page.tables and "None in this store" in " ".join(page.text)
    for method in load_results(copy).roles():
        tool_page = copy / "report_files" / "tools" / f"{safe_name(method)}.html"
        assert "No ground-truth diagnostics" in tool_page.read_text(encoding="utf-8")
