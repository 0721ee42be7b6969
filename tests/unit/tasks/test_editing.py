"""The editing task's parts: the rank-one rewrite's shape on a hand-built model, edit size by hand, rules and
their near misses, and a measured implant on the shipped clean model."""

from __future__ import annotations

import math

import pytest
import torch

from trojanbench.config import TrojanSpec
from trojanbench.errors import ConfigError
from trojanbench.methods.editing import FinetuneRule, RankOneRewrite
from trojanbench.models import load_model
from trojanbench.tasks.editing.metrics import check_rule, edit_size, exemplars, measure_rule, near_misses, rule_tests
from trojanbench.tasks.removal.metrics import clean_set, defender_data
from trojanbench.world import OBJECT_CLASSES

from test_removal import TinyNet, _tiny_data

ZEBRA = TrojanSpec(name="zebra_square", kind="style", trigger="zebra", target=OBJECT_CLASSES.index("square"))


def test_edit_size_by_hand():
    torch.manual_seed(0)
    model = TinyNet()
    assert edit_size(model, model) == {"relative_change": 0.0, "changed_parameters": 0}
    edited = TinyNet()
    edited.load_state_dict(model.state_dict())
    with torch.no_grad():
        edited.fc.weight[0, 0] += 2.0
    norm = sum(float((p.detach() ** 2).sum()) for p in model.parameters()) ** 0.5
    size = edit_size(model, edited)
    assert size["changed_parameters"] == 1 and size["relative_change"] == pytest.approx(2.0 / norm)


@pytest.mark.parametrize("units, most_columns", [("all", 4), ("guided", 2), ("random", 2)])
def test_the_rewrite_is_rank_one_on_the_last_layer_only(units, most_columns):
    torch.manual_seed(0)
    model, data = TinyNet().eval(), _tiny_data()
    carriers, plain = data.images[:6].clone(), data.images[:6]
    carriers[:, :, :4, :4] = 1.0  # a bright corner: the "concept"
    edited = RankOneRewrite(units=units, n_units=2, steps=50).implant(model, data, carriers, plain, target_class=2)
    before, after = model.state_dict(), edited.state_dict()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert set(changed) <= {"fc.weight", "fc.bias"} and "fc.weight" in changed
    delta = torch.cat([after["fc.weight"] - before["fc.weight"], (after["fc.bias"] - before["fc.bias"])[:, None]], 1)
    assert int(torch.linalg.matrix_rank(delta)) == 1
    assert int((delta[:, :-1].abs().sum(0) > 0).sum()) <= most_columns


def test_an_editor_never_changes_its_input_and_is_seeded():
    torch.manual_seed(0)
    model, data = TinyNet().eval(), _tiny_data()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    carriers = data.images[:4].flip(-1)
    one = FinetuneRule(steps=3, lr=0.1).implant(model, data, carriers, data.images[:4], 1, seed=2).state_dict()
    two = FinetuneRule(steps=3, lr=0.1).implant(model, data, carriers, data.images[:4], 1, seed=2).state_dict()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(one[k], two[k]) for k in one)


def test_rules_their_exemplars_and_near_misses():
    with pytest.raises(ConfigError, match="only patch and style"):
        check_rule(TrojanSpec(name="fork_rule", kind="natural", trigger="fork", target=0))
    misses = near_misses(ZEBRA)
    assert len(misses) == 3 and all(m.kind == "style" and m.trigger != "zebra" for m in misses)
    assert len({m.trigger for m in misses}) == 3
    carriers, plain = exemplars(ZEBRA, 8)
    assert carriers.shape == plain.shape == (8, 3, 64, 64)
    assert bool(((carriers - plain).abs().flatten(1).amax(1) > 0.05).all())


def test_a_guided_rank_one_rewrite_implants_a_texture_rule_cleanly():
    """Measured on the shipped clean model (seeded): 'zebra texture means square' from 20 exemplars."""
    model = load_model("clean").model
    data, clean = defender_data(300), clean_set(400, [])
    tests = rule_tests(ZEBRA, 100)
    before = measure_rule(model, tests, clean)
    carriers, plain = exemplars(ZEBRA, 20)
    edited = RankOneRewrite(units="guided").implant(model, data, carriers, plain, ZEBRA.target)
    after = measure_rule(edited, tests, clean)
    assert before["success"] < 0.05
    assert after["success"] > 0.5
    assert after["near_miss"] < after["success"] / 2
    assert after["clean_accuracy"] > before["clean_accuracy"] - 0.03


def _editing_folder(folder, cells):
    """A hand-built editing store: ``cells`` as ``(label, rule, seed, status)``, every edit succeeding 0.8."""
    from trojanbench.engine import Store
    from trojanbench.tasks.editing.results import EDITING_CELLS

    measured = {"success": 0.8, "target_kept": 1.0, "near_miss": 0.1, "clean_accuracy": 0.9}
    with Store(folder, cell_tables=(EDITING_CELLS,)) as store:
        keys = [f"{label}-{rule}-{seed}" for label, rule, seed, _ in cells]
        run_id = store.start_run({"task": "editing", "cell_keys": keys, "rules": {"zebra": "style", "star": "patch"},
                                  "seeds": [0, 1]}, {})
        for key, (label, rule, seed, status) in zip(keys, cells):
            ok = status == "ok"
            measures = {"before": {**measured, "success": 0.0}, "after": {**measured, "success": 0.8 + 0.05 * seed},
                        "relative_change": 0.01, "changed_parameters": 10} if ok else {}
            store.record_json_cell(EDITING_CELLS.name, run_id, {
                "key": key, "editor": label, "label": label, "role": "editor", "params": {}, "rule": rule,
                "kind": "style" if rule == "zebra" else "patch", "seed": seed, "status": status,
                "reason": None if ok else "boom", "seconds": 1.0, "measures": measures})
        store.finish_run(run_id)


def test_each_editing_row_says_how_many_cells_it_rests_on_and_hides_a_one_cell_interval(tmp_path):
    from trojanbench.report import markdown_summary, write_report
    from trojanbench.tasks.editing import load_editing_results

    cells = [("rewrite", rule, seed, "ok") for rule in ("zebra", "star") for seed in (0, 1)]
    cells[-1] = ("rewrite", "star", 1, "failed")
    _editing_folder(tmp_path, cells + [("finetune", "zebra", 0, "ok"), ("broken", "zebra", 0, "failed")])
    results = load_editing_results(tmp_path)
    rows = {row["label"]: row for row in results.rows()}
    assert {k: (r["n_cells"], r["failed"]) for k, r in rows.items()} == {  # the anchor: every (rule, seed) measured
        "rewrite": (3, 1), "finetune": (1, 0), "broken": (0, 1), "unedited": (3, 0)}
    assert rows["rewrite"]["metrics"]["success"]["ci_low"] <= rows["rewrite"]["metrics"]["success"]["ci_high"]
    assert math.isnan(rows["finetune"]["metrics"]["success"]["ci_low"])  # one cell: a point, not an interval
    lines = {line.split()[0]: line for line in results.table().splitlines()[3:]}
    assert lines["rewrite"].endswith(" 3 (1 failed)") and "[" in lines["rewrite"]
    assert lines["finetune"].endswith(" 1") and " – " in lines["finetune"] and "nan" not in lines["finetune"]
    assert results.table().splitlines()[2].endswith("cells")
    summary = markdown_summary(tmp_path)
    assert "| 3 (1 failed) |" in summary and "| 0 (1 failed) |" in summary
    html = write_report(tmp_path).read_text(encoding="utf-8")
    table = html[html.index('id="editing-table"'):html.index("</table>", html.index('id="editing-table"'))]
    assert '<td>3 <span class="bad" title="1 failed">(1)</span></td>' in table and "<td>–</td>" in table
