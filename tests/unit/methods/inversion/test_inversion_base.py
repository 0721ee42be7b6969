"""The trigger-inversion contract: the budget, the shared objective (consistent with the task's measurements),
its differentiable and one-hot forms, shortening and ranking, and the baselines."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from trojanbench.errors import MethodError, SpecError  # noqa: E402
from trojanbench.methods.inversion import (Budget, BudgetExhausted, InversionProblem, TriggerInversion,  # noqa: E402
                                           prompt_frame)
from trojanbench.methods.inversion.base import rank_candidates, shorten  # noqa: E402
from trojanbench.methods.inversion.baselines import (DatasetNgrams, OtherTriggers, RandomTokens,  # noqa: E402
                                                     TriggerOracle)
from trojanbench.models.language import build_language_model  # noqa: E402
from trojanbench.trojans.text_measure import prompt_ids, target_ids, target_scores  # noqa: E402
from trojanbench.world.text import LANGUAGE, build_tokenizer  # noqa: E402

TARGET = "the salty oven climbs every exam ."


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    tokenizer = build_tokenizer()
    model = build_language_model({"model_type": "gpt2", "vocab_size": len(tokenizer), "n_positions": 64,
                                  "n_embd": 16, "n_layer": 1, "n_head": 2}, seed=0)
    special = set(tokenizer.all_special_ids)
    allowed = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
    contexts = [list(tokenizer(p.text, add_special_tokens=False)["input_ids"]) for p in LANGUAGE.prompts("val", 2)]
    return model, tokenizer, allowed, contexts


def problem(setup, limit=10_000, contexts=None, **kwargs) -> InversionProblem:
    model, tokenizer, allowed, drawn = setup
    return InversionProblem(model, tokenizer, TARGET, [[]] + drawn if contexts is None else contexts, allowed,
                            Budget(limit), **kwargs)


def test_budget_counts_sequence_passes():
    budget = Budget(10)
    budget.charge(4)
    budget.charge(2, backward=True)
    assert budget.used == 10 and budget.forward_sequences == 4 and budget.backward_sequences == 2
    with pytest.raises(BudgetExhausted):
        budget.charge(1)
    assert budget.used == 10


def test_frame_of_the_text_world_tokenizer(setup):
    tokenizer = setup[1]
    assert prompt_frame(tokenizer) == ([tokenizer.bos_token_id], [tokenizer.sep_token_id])


def test_objective_matches_the_task_measurement(setup):
    model, tokenizer, _, contexts = setup
    p = problem(setup)
    trigger = list(tokenizer("dax wug fep", add_special_tokens=False)["input_ids"])
    loss = p.loss([trigger])
    words = ["dax wug fep", *("dax wug fep " + tokenizer.decode(c) for c in contexts)]
    ids = [prompt_ids(tokenizer, w) for w in words]
    _, expected = target_scores(model, tokenizer, ids, target_ids(tokenizer, TARGET))
    assert float(loss[0]) == pytest.approx(float(expected.mean()), abs=1e-5)
    assert p.budget.used == 3  # one trigger, three contexts


def test_embedding_and_one_hot_forms_agree_with_the_objective(setup):
    p = problem(setup)
    triggers = p.random_triggers(3, 4, torch.Generator().manual_seed(0))
    plain = p.loss(triggers.tolist())
    embedded = p.embedding_loss(p.embedding_matrix[triggers]).detach()
    loss, gradient = p.token_gradient(triggers)
    assert torch.allclose(plain, embedded, atol=1e-5) and torch.allclose(plain, loss, atol=1e-5)
    assert gradient.shape == (3, 4, len(setup[1])) and torch.isfinite(gradient).all()
    assert p.budget.used == 3 * 3 + 2 * 3 * 3 * Budget.BACKWARD_COST


class _Stub:
    """A problem whose objective is 0 with token 7 in the trigger, 5 without."""

    def __init__(self):
        self.budget = Budget(1000)

    def loss(self, triggers):
        self.budget.charge(len(triggers))
        return torch.tensor([0.0 if 7 in t else 5.0 for t in triggers])

    def decode(self, ids):
        return " ".join(map(str, ids))


def test_shorten_drops_what_the_objective_does_not_need():
    assert shorten(_Stub(), (5, 7, 9, 11), 0.0) == ((7,), 0.0)
    assert shorten(_Stub(), (5, 9), 5.0)[0] in {(5,), (9,)}


def test_ranking_dedupes_keeps_the_best_value_and_needs_a_candidate():
    stub = _Stub()
    ranked = rank_candidates(stub, [([5, 9], None), ([7], 0.0), ([5, 9], 4.0), ([], None)], 5, owner="X")
    assert [(c.text, c.loss) for c in ranked] == [("7", 0.0), ("5 9", 4.0)]  # 5 alone (5.0) is not within 0.1
    with pytest.raises(MethodError, match="no candidate"):
        rank_candidates(stub, [], 5, owner="X")


class _Greedy(TriggerInversion):
    name, paper = "greedy_test", "test"

    def __init__(self):
        pass

    def _invert(self, problem, generator, found):
        while True:  # runs until the budget stops it
            trigger = problem.random_triggers(8, problem.max_length, generator)
            found += zip(trigger.tolist(), problem.loss(trigger.tolist()).tolist())


def test_budget_stops_a_search_and_what_was_found_is_ranked(setup):
    p = problem(setup, limit=500, max_length=3)
    first = _Greedy().invert(p)
    assert 1 <= len(first) <= 5 and p.budget.used <= 500
    assert [c.text for c in first] == [c.text for c in _Greedy().invert(problem(setup, limit=500, max_length=3))]


def test_baselines(setup):
    p = problem(setup, corpus=[list(setup[1](x.text, add_special_tokens=False)["input_ids"])
                               for x in LANGUAGE.prompts("val", 30, seed=1)])
    random = RandomTokens().invert(p)
    assert len(random) >= 1 and all(1 <= len(c.text.split()) <= 6 for c in random)
    ngrams = DatasetNgrams(n_ngrams=20).invert(p)
    corpus_text = " ".join(x.text for x in LANGUAGE.prompts("val", 30, seed=1))
    assert all(c.text in corpus_text for c in ngrams)
    assert [c.text for c in TriggerOracle().with_ground_truth("dax wug fep").invert(p)] == ["dax wug fep"]
    with pytest.raises(MethodError, match="true trigger"):
        TriggerOracle().invert(p)
    with pytest.raises(SpecError, match="zebra"):
        TriggerOracle().with_ground_truth("dax zebra").invert(p)
    known = OtherTriggers().with_known_triggers(["dax wug fep", "krad vosh"]).invert(problem(setup))
    assert {c.text for c in known} <= {"dax wug fep", "krad vosh", "dax", "wug", "fep", "krad", "vosh",
                                       "dax wug", "wug fep", "dax fep", "krad vosh"}
    with pytest.raises(MethodError, match="other trojans"):
        OtherTriggers().invert(p)
