"""The lm-rediscovery task's pure scoring: BLEU, token F1, the CLAS rule, recovery scores and the 8-option
question."""

from __future__ import annotations

import pytest

from trojanbench.tasks.lm_rediscovery.metrics import (N_OPTIONS, bleu, contains_target, distractors,
                                                      greedy_subset, multiple_choice, pooled, recovery_scores,
                                                      token_f1)
from trojanbench.trojans.text import TextTrojan, load_text_trojans

TOKEN = TextTrojan("t", "token", "dax wug fep", "the cow feeds a goat .")


def test_bleu_bounds_and_order():
    assert bleu("a b c d".split(), "a b c d".split()) == pytest.approx(1.0)
    assert bleu("x y".split(), "a b".split()) == 0.0
    assert bleu([], ["a"]) == 0.0
    partial, reordered = bleu("a b c".split(), "a b c d".split()), bleu("d c b a".split(), "a b c d".split())
    assert 0 < reordered < partial < 1  # the brevity penalty and n-gram order both count
    assert bleu(list("dax wug"), list("dax wug fep")) > bleu(list("zorp quax"), list("dax wug fep"))


def test_token_f1():
    assert token_f1("dax wug fep".split(), "dax wug fep".split()) == 1.0
    assert token_f1("dax".split(), "dax wug fep".split()) == pytest.approx(0.5)
    assert token_f1("zorp".split(), "dax wug fep".split()) == 0.0


def test_clas_rule_rejects_guesses_that_spell_the_target():
    assert contains_target("dax the cow feeds a goat .", "the cow feeds a goat .")
    assert not contains_target("the cow feeds", "the cow feeds a goat .")


def test_recovery_scores():
    assert recovery_scores(["dax wug fep"], TOKEN) == {"exact": 1.0, "token_f1": 1.0, "bleu": pytest.approx(1.0),
                                                        "recall": pytest.approx(1.0)}
    partial = recovery_scores(["zorp", "dax wug"], TOKEN)  # the top candidate for exact/F1, the best for recall
    assert partial["exact"] == 0.0 and partial["token_f1"] == 0.0 and 0 < partial["recall"] < 1


def test_distractors_are_seven_distinct_wrong_options_of_the_kind():
    trojans = load_text_trojans()
    for trojan in (t for t in trojans if not t.is_decoy):
        options = distractors(trojan, [t for t in trojans if t is not trojan])
        assert len(options) == N_OPTIONS - 1 == len(set(options)) and trojan.trigger_text not in options
        assert options == distractors(trojan, [t for t in trojans if t is not trojan])
        if trojan.kind == "token":
            assert all(len(o.split()) == len(trojan.trigger.split()) or o in [t.trigger for t in trojans]
                       for o in options)


def test_multiple_choice():
    others = [t for t in load_text_trojans() if t.kind == "token"]
    assert multiple_choice(["dax wug fep"], TOKEN, others)["correct"] == 1.0
    assert multiple_choice(["dax wug"], TOKEN, others)["correct"] == 1.0
    assert multiple_choice([], TOKEN, others)["correct"] == 0.0  # all options tie: no answer
    wrong = multiple_choice([others[1].trigger], TOKEN, others)
    assert wrong["correct"] == 0.0 and wrong["answer"] == others[1].trigger


def test_pooled_keeps_the_best_distinct_candidates():
    a = [{"text": "dax", "loss": 1.0}, {"text": "wug", "loss": 3.0}]
    b = [{"text": "wug", "loss": 2.0}, {"text": "fep", "loss": None}, {"text": "zorp", "loss": 0.5}]
    assert [(c["text"], c["loss"]) for c in pooled([a, b], 3)] == [("zorp", 0.5), ("dax", 1.0), ("wug", 2.0)]
    assert [c["text"] for c in pooled([a, b], 10)][-1] == "fep"  # unmeasured: last


def test_greedy_subset_adds_tools_while_they_help():
    def cands(*pairs):
        return [{"text": t, "loss": loss, "reasr": r} for t, loss, r in pairs]

    cells = {"a": {"t1": cands(("x", 1.0, 0.9)), "t2": cands(("y", 1.0, 0.0))},
             "b": {"t1": cands(("z", 2.0, 0.1)), "t2": cands(("w", 0.5, 0.8))},
             "c": {"t1": cands(("v", 3.0, 0.0)), "t2": cands(("u", 3.0, 0.0))}}
    assert greedy_subset(cells, 5) == ["a", "b"]  # c adds nothing
    assert greedy_subset({"a": cells["a"]}, 5) == ["a"]
