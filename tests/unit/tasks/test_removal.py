"""The removal task's parts: metrics against hand-computed values, budgets, the defender's split, guidance,
the procedures' invariants on hand-built models, and the measured oracle-versus-random inequality."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from trojanbench.audit import trojans_of
from trojanbench.errors import ConfigError
from trojanbench.methods.editing import DefenderData, ImageGuidance
from trojanbench.methods.editing.base import prune_units
from trojanbench.methods.editing.procedures import ChannelLipschitz, Identity, Pruning, Unlearning
from trojanbench.models import load_model
from trojanbench.tasks.removal.metrics import (
    TriggerGuidance,
    TrojanMeasure,
    budget_size,
    clean_set,
    defender_data,
    der,
    fidelity,
    measure,
    noise_images,
    normalized_score,
    triggered_set,
)
from trojanbench.world import generate_scenes

from image_digests import image_digests


def test_fidelity_and_der_match_their_formulas():
    pre, post = TrojanMeasure(0.9, 0.8, 0.1), TrojanMeasure(0.85, 0.2, 0.7)
    assert fidelity(pre, post) == pytest.approx((0.8 - 0.2) / 0.8 * 0.85 / 0.9)
    assert der(pre, post) == pytest.approx((0.6 - 0.05 + 1) / 2)
    # an edit that raises attack success or accuracy gets no credit or penalty beyond the clip at 0
    assert der(pre, TrojanMeasure(0.95, 0.9, 0.0)) == pytest.approx(0.5)
    assert fidelity(TrojanMeasure(0.9, 0.0, 1.0), post) != fidelity(TrojanMeasure(0.9, 0.0, 1.0), post)  # NaN


def test_a_no_op_scores_fidelity_zero_and_der_one_half():
    pre = TrojanMeasure(0.97, 0.91, 0.08)
    assert fidelity(pre, pre) == 0.0
    assert der(pre, pre) == 0.5


def test_normalized_score_and_its_no_headroom_case():
    assert normalized_score(0.5, 0.2, 0.8) == pytest.approx(0.5)
    assert normalized_score(0.8, 0.2, 0.8) == pytest.approx(1.0)
    assert normalized_score(0.2, 0.2, 0.8) == 0.0
    assert normalized_score(0.5, 0.5, 0.52) != normalized_score(0.5, 0.5, 0.52)  # NaN: nothing to normalize by


@pytest.mark.parametrize("budget, n_train, expected", [("100", None, 100), ("1%", 30000, 300), ("5%", 30000, 1500),
                                                      ("0.5%", 30000, 150)])
def test_budget_sizes(budget, n_train, expected):
    assert budget_size(budget, n_train) == expected


@pytest.mark.parametrize("budget, n_train, words", [("1%", None, "training-set size"), ("ten", 30000, "count"),
                                                    ("5", 30000, "at least 10"), ("-1%", 30000, "count"),
                                                    ("100.5", 30000, "count")])
def test_bad_budgets_are_refused_with_the_reason(budget, n_train, words):
    with pytest.raises(ConfigError, match=words):
        budget_size(budget, n_train)


def test_the_defenders_data_never_overlaps_test_data():
    trojans = list(trojans_of(load_model("trojaned")).trojans)
    data = defender_data(300)
    defender = image_digests(torch.cat([data.images, data.val_images]))
    assert len(defender) == 300
    assert len(data.val_images) == 60 and len(data.images) == 240
    test = image_digests(clean_set(400, trojans)[0]) | image_digests(generate_scenes("test", 300).images)
    for spec in trojans[::3]:
        test |= image_digests(triggered_set(spec, 50).images)
    assert defender.isdisjoint(test)
    oracle = TriggerGuidance(trojans[-1])  # a natural feature: its scenes come from the defender's split too
    assert image_digests(oracle.bank.images).isdisjoint(test)


def test_image_guidance_keeps_labels_range_and_is_seeded():
    images = generate_scenes("defense", 16).images
    labels = torch.arange(16)
    guidance = ImageGuidance("noise", noise_images(4, seed=0))
    first, kept = guidance.guide(images, labels, torch.Generator().manual_seed(3))
    again, _ = guidance.guide(images, labels, torch.Generator().manual_seed(3))
    assert torch.equal(first, again) and torch.equal(kept, labels)
    assert first.shape == images.shape and 0 <= float(first.min()) and float(first.max()) <= 1
    changed = (first - images).abs().flatten(1).amax(1) > 0
    assert bool(changed.all())  # every image got a pasted or blended guidance image


class TinyNet(nn.Module):
    """conv -> batch norm -> relu -> pool -> linear: small enough to check by hand."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.norm(self.conv(x))).mean((2, 3)))


def _tiny_data(n=40):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, 8, 8, generator=generator)
    labels = torch.randint(0, 3, (n,), generator=generator)
    return DefenderData(images[:30], labels[:30], images[30:], labels[30:])


def test_procedures_return_an_edited_copy_and_leave_the_model_alone():
    torch.manual_seed(0)
    model, data = TinyNet().eval(), _tiny_data()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    guidance = ImageGuidance("noise", noise_images(2, seed=1, size=8))
    for procedure in (Identity(), Unlearning(steps=3, lr=0.1), Pruning(units=2, steps=3, lr=0.1), ChannelLipschitz()):
        edited = procedure.remove(model, data, guidance, target_class=1, seed=0)
        assert edited is not model
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(before[k], v) for k, v in Identity().remove(model, data, None, 0).state_dict().items())
    one = Unlearning(steps=3, lr=0.1).remove(model, data, guidance, 1, seed=5).state_dict()
    two = Unlearning(steps=3, lr=0.1).remove(model, data, guidance, 1, seed=5).state_dict()
    assert all(torch.equal(one[k], two[k]) for k in one)  # seeded


def test_pruned_units_stay_cut_through_fine_tuning():
    torch.manual_seed(0)
    model, data = TinyNet().eval(), _tiny_data()
    guidance = ImageGuidance("noise", noise_images(2, seed=1, size=8))
    edited = Pruning(units=2, steps=5, lr=0.5).remove(model, data, guidance, 0, seed=0)
    cut = (edited.fc.weight == 0).all(0)
    assert int(cut.sum()) == 2
    reapply = prune_units(model, torch.tensor([3]))
    assert bool((model.fc.weight[:, 3] == 0).all())
    with torch.no_grad():
        model.fc.weight += 1
    reapply()
    assert bool((model.fc.weight[:, 3] == 0).all())


def test_channel_lipschitz_switches_off_the_channel_with_an_outlying_bound():
    torch.manual_seed(0)
    model = TinyNet().eval()
    with torch.no_grad():
        model.conv.weight.fill_(0.1)
        model.conv.weight[2] *= 50  # one channel's Lipschitz bound far above the others
    edited = ChannelLipschitz(u=1.0).remove(model, _tiny_data(), None, 0)
    assert edited.norm.weight.tolist() == [1.0, 1.0, 0.0, 1.0] and float(edited.norm.bias[2]) == 0.0
    untouched = ChannelLipschitz(u=3.0).remove(TinyNet().eval(), _tiny_data(), None, 0)
    assert bool((untouched.norm.weight == 1).all())  # equal bounds: nothing stands out


def test_a_bad_hyperparameter_is_refused_by_name():
    with pytest.raises(ConfigError, match="'units' parameter of Pruning"):
        Pruning(units=-1).remove(TinyNet(), _tiny_data(), None, 0)


@pytest.fixture(scope="module")
def shipped():
    loaded = load_model("trojaned")
    return loaded.model, {spec.name: spec for spec in trojans_of(loaded).trojans}


def test_oracle_guidance_removes_a_patch_trojan_better_than_random_guidance(shipped):
    """The measured inequality the task rests on, on the shipped model's ``smiley`` patch trojan (seeded)."""
    model, specs = shipped
    spec = specs["smiley"]
    data, clean = defender_data(120), clean_set(300, list(specs.values()))
    triggered = triggered_set(spec, 100)
    pre = measure(model, clean, triggered)
    procedure = Unlearning(steps=40)
    oracle = measure(procedure.remove(model, data, TriggerGuidance(spec), spec.target, seed=0), clean, triggered)
    random = measure(procedure.remove(model, data, ImageGuidance("random", noise_images(10, 0)), spec.target, seed=0),
                     clean, triggered)
    assert pre.attack_success > 0.85
    assert oracle.attack_success < 0.2 < random.attack_success - 0.4
    assert fidelity(pre, oracle) > fidelity(pre, random) + 0.4
    assert oracle.clean_accuracy > pre.clean_accuracy - 0.05  # removed without wrecking the model


def test_procedures_are_built_by_kind_and_unknown_parameters_are_bad_input():
    from trojanbench.tasks.removal.task import make_procedure

    assert make_procedure("unlearning", {"steps": 3}).get_params()["steps"] == 3
    assert make_procedure("unlearning", quick=True).steps == 30
    with pytest.raises(ConfigError, match=r"has no parameter\(s\) \['stepz'\]"):
        make_procedure("unlearning", {"stepz": 3})
    with pytest.raises(ConfigError, match="is not a removal procedure. Choices: .*unlearning"):
        make_procedure("rank_one_rewrite")


def _removal_folder(folder, edits):
    """A hand-built removal store, budget 100, trojans a and b, seeds 0 and 1: ``edits`` as ``(procedure, source,
    trojan or None, seed, status, attack success after)``, the unedited model at ASR 0.9 and every edit's
    accuracy 0.9."""
    from trojanbench.tasks.removal.store import RemovalCellRow, RemovalStore

    with RemovalStore(folder) as store:
        keys = [f"{procedure}-{source}-{trojan}-{seed}" for procedure, source, trojan, seed, _, _ in edits]
        run_id = store.start_run({"task": "removal", "cell_keys": keys, "budgets": ["100"], "seeds": [0, 1],
                                  "trojan_names": ["a", "b"], "trojan_kinds": {"a": "patch", "b": "patch"}}, {})
        for key, (procedure, source, trojan, seed, status, asr) in zip(keys, edits):
            row = RemovalCellRow(key, procedure, "procedure" if procedure != "identity" else "anchor", {}, source,
                                 "trojaned", trojan, seed, "100", status, None if status == "ok" else "boom", 1.0)
            measures = {"clean_accuracy": 0.9, "attack_success": asr, "robust_accuracy": 0.5,
                        "relearned_attack_success": 0.5}
            scored = [trojan] if trojan else ["a", "b"]
            store.record_removal_cell(run_id, row, {t: measures for t in scored} if status == "ok" else {})
        store.finish_run(run_id)


def test_each_removal_row_says_how_many_cells_it_rests_on_and_hides_a_one_cell_interval(tmp_path):
    from trojanbench.report import markdown_summary, write_report
    from trojanbench.tasks.removal import load_removal_results

    edits = [("identity", "-", None, seed, "ok", 0.9) for seed in (0, 1)]
    edits += [("unlearning", "oracle", trojan, seed, "ok", 0.1 + 0.1 * seed) for trojan in "ab" for seed in (0, 1)]
    edits += [("unlearning", "random", None, 0, "ok", 0.8), ("unlearning", "random", None, 1, "failed", 0.8)]
    edits += [("unlearning", "tool", "a", 0, "ok", 0.3)]  # one cell only
    edits += [("pruning", "-", None, seed, "failed", 0.0) for seed in (0, 1)]  # a row with nothing scored
    _removal_folder(tmp_path, edits)
    results = load_removal_results(tmp_path)
    rows = {row["label"]: row for row in results.rows("100")}
    assert {k: (r["n_cells"], r["failed"]) for k, r in rows.items()} == {
        "identity": (4, 0), "unlearning <- oracle": (4, 0),
        "unlearning <- random": (2, 2),  # the failed edit was for every trojan: both its cells are lost
        "unlearning <- tool": (1, 0), "pruning": (0, 4)}
    oracle, tool = rows["unlearning <- oracle"], rows["unlearning <- tool"]
    assert oracle["metrics"]["fidelity"]["ci_low"] < oracle["metrics"]["fidelity"]["ci_high"]
    assert math.isnan(tool["metrics"]["fidelity"]["ci_low"]) and math.isnan(tool["versus_random"].ci_low)
    assert tool["versus_random"].mean_difference > 0
    assert "beat random" not in results.verdict("100")  # one cell is no evidence, however large its difference
    lines = {line.split(" ")[0] + line.split(" ")[2]: line for line in results.table().splitlines() if "<-" in line}
    assert lines["unlearningrandom"].endswith(" 2 (2 failed)") and lines["unlearningoracle"].endswith(" 4")
    assert lines["unlearningtool"].endswith(" 1") and " – " in lines["unlearningtool"]
    assert "nan" not in results.table() + results.verdict("100")
    summary = markdown_summary(tmp_path)
    assert "| 2 (2 failed) |" in summary and "| 0 (4 failed) |" in summary
    html = write_report(tmp_path).read_text(encoding="utf-8")
    table = html[html.index('id="removal-table-1"'):html.index("</table>", html.index('id="removal-table-1"'))]
    assert '<td>2 <span class="bad" title="2 failed">(2)</span></td>' in table and "<td>–</td>" in table
