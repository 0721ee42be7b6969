"""The judge-validity battery in a rediscovery run: every judge on every question, stored once, read back per
trojan, in the report and in results.json."""

from __future__ import annotations

import json
import sqlite3

from test_runner import TWO_TROJANS, write_suite

from trojanbench import load_results, run, write_report
from trojanbench.tasks.rediscovery.battery import CHECK_LABELS


def _battery_rows(folder):
    with sqlite3.connect(folder / "results.sqlite") as db:
        return sorted(db.execute("SELECT judge, trojan, seed, finished FROM battery"))


def test_every_judge_gets_the_battery_on_every_question_once(tiny_zoo, tmp_path):
    suite = write_suite(tmp_path / "suite.yaml", tiny_zoo["trojaned"], ["random_noise"], seeds=(0, 1),
                        trojans=TWO_TROJANS)
    out = tmp_path / "out"
    results = run(suite, out=out)
    rows = _battery_rows(out)
    assert [(j, t, s) for j, t, s, _ in rows] == [(j, t, s) for j in ("appearance", "concept")
                                                  for t in ("fork", "smiley") for s in (0, 1)]
    run(suite, out=out)
    assert _battery_rows(out) == rows, "a second run recomputes no battery"

    for judge in ("concept", "appearance"):
        table = results.battery(judge)
        assert set(table) == {"smiley", "fork"} and all(entry["seeds"] == 2 for entry in table.values())
        for trojan, entry in table.items():  # the perturbed null too: the run has the model
            assert set(entry["checks"]) == set(CHECK_LABELS) - ({"distinct_options"} if trojan == "fork" else set())
            assert entry["passed"] == all(check["margin"] >= 0 for check in entry["checks"].values())
    assert any(line.startswith("judge battery (concept)") for line in results.validity_lines("concept"))

    shown = [c for c in results.cells if c.seed == 0 and c.status == "ok" and c.image_file]
    assert set(results.evidence) == {(c.key, j) for c in shown for j in ("appearance", "concept")}  # the gallery's

    write_report(out)
    html = (out / "report.html").read_text(encoding="utf-8")
    thumbnails = sorted((out / "report_files" / "evidence").glob("*.png"))
    assert len(thumbnails) == len(results.evidence) and html.count('<figure title="') == len(thumbnails)
    assert 'id="battery-concept"' in html and 'id="battery-appearance"' in html
    assert "can the judges be trusted?" in html and 'href="#battery-concept"' in html  # at the top of the report
    passed = sum(entry["passed"] for judge in ("concept", "appearance") for entry in results.battery(judge).values())
    assert html.count("✓ battery") == passed and html.count("✗ battery") == 4 - passed  # the grids' trojan headers
    assert 'id="counted"' in html  # the verdicts that count, before the per-judge leaderboards
    full = json.loads((out / "results.json").read_text(encoding="utf-8"))
    counted = full["counted_verdicts"]
    valid = {(q["trojan"], q["seed"]): q["judges"] for q in counted["valid_judges"]}
    for (trojan, seed), judges in valid.items():
        assert judges == [j for j in results.judges if all(
            c["passed"] for c in results.battery_questions(j)[(trojan, seed)])]
    assert ("random_noise" in counted["summaries"]) == any(valid.values())
    assert {(e["key"], e["judge"]) for e in full["evidence"]} == set(results.evidence)
    document = full["battery"]
    for judge in ("concept", "appearance"):
        assert document[judge]["per_trojan"] == json.loads(json.dumps(load_results(out).battery(judge)))
        assert [(q["trojan"], q["seed"]) for q in document[judge]["questions"]] == [
            ("fork", 0), ("fork", 1), ("smiley", 0), ("smiley", 1)]


def test_check_judges_puts_the_judges_through_the_battery_on_a_users_trigger(tmp_path, logo_png):
    import yaml
    from click.testing import CliRunner

    from trojanbench import check_judges
    from trojanbench.cli import main

    spec = tmp_path / "mine.yaml"
    spec.write_text(yaml.safe_dump({"trojans": [{"name": "logo", "kind": "patch", "trigger": str(logo_png),
                                                 "target": "bowtie"}]}))
    shown = CliRunner().invoke(main, ["check-judges", "--trojans", str(spec), "--judges", "concept", "--seeds", "1",
                                      "--no-progress"])
    assert shown.exit_code == 0, shown.output
    table = check_judges(str(spec), judges=["concept"], seeds=1)["concept"]
    assert list(table) == ["logo"] and set(table["logo"]["checks"]) == set(CHECK_LABELS)
    assert "judge: concept" in shown.output and f"every check passed on {int(table['logo']['passed'])} of 1" in \
        shown.output
    row = next(line for line in shown.output.splitlines() if line.startswith("logo"))
    assert f"{table['logo']['checks']['oracle_top1']['value']:.3f}" in row  # the CLI prints what the API returns
    assert not any(tmp_path.glob("*.sqlite")), "check-judges writes nothing"

    for bad, message in ((["--judges", "concpt"], "Did you mean: concept"), (["--seeds", "0"], "seeds"),
                         (["--judges", ""], "at least one judge")):
        refused = CliRunner().invoke(main, ["check-judges", "--trojans", str(spec), "--no-progress", *bad])
        assert refused.exit_code == 2 and message in refused.output, refused.output
