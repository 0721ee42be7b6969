"""Verdicts that count: a question's cells are scored only by the judges that pass their battery on it."""

from __future__ import annotations

import pytest

from trojanbench.tasks.rediscovery.verdicts import counted_verdicts, verdict_lines

PASS, FAIL = [{"name": "oracle_top1", "passed": True}], [{"name": "oracle_top1", "passed": True},
                                                         {"name": "null_noise", "passed": False}]
KINDS = {"smiley": "patch", "jaguar": "style", "fork": "natural"}


def _example():
    battery = {"a": {("smiley", 0): PASS, ("jaguar", 0): FAIL, ("fork", 0): FAIL},
               "b": {("smiley", 0): PASS, ("jaguar", 0): PASS, ("fork", 0): FAIL}}
    scores = {"a": {"tool": {("smiley", 0): (0.6, 1), ("jaguar", 0): (0.9, 1), ("fork", 0): (0.9, 1)},
                    "oracle": {("smiley", 0): (0.8, 1), ("jaguar", 0): (0.8, 1), ("fork", 0): (0.8, 1)}},
              "b": {"tool": {("smiley", 0): (0.2, 0), ("jaguar", 0): (0.5, 1), ("fork", 0): (0.9, 1)},
                    "oracle": {("smiley", 0): (0.7, 1), ("jaguar", 0): (0.6, 1), ("fork", 0): (0.9, 1)}}}
    return counted_verdicts(battery, scores)


def test_only_judges_valid_on_a_question_score_it_and_their_disagreements_are_flagged():
    verdicts = _example()
    assert verdicts.valid == {("fork", 0): (), ("jaguar", 0): ("b",), ("smiley", 0): ("a", "b")}
    assert verdicts.counted_questions == [("jaguar", 0), ("smiley", 0)]
    assert verdicts.p_true["tool"] == {("jaguar", 0): 0.5, ("smiley", 0): pytest.approx(0.4)}  # fork: no valid judge
    assert verdicts.top1["tool"] == {("jaguar", 0): 1.0, ("smiley", 0): 0.5}
    assert verdicts.disagreements == {"tool": [("smiley", 0)]}  # a says the trigger wins, b does not
    assert verdicts.valid_counts() == {"a": 1, "b": 2}
    summary = verdicts.summaries(KINDS)["tool"]
    assert summary.n_cells == 2 and summary.mean == pytest.approx(0.45) and summary.worst_trojan == "smiley"


def test_the_lines_name_the_valid_judges_and_say_when_nothing_counts():
    verdicts = _example()
    lines = verdict_lines(verdicts, verdicts.summaries(KINDS), ["tool", "oracle"])
    assert lines[0].startswith("verdicts that count: 2 of 3 questions") and "a on 1, b on 2" in lines[0]
    assert lines[1].split()[0] == "tool" and "valid judges disagree on 1" in lines[1]
    assert lines[2].split()[0] == "oracle" and "disagree" not in lines[2]
    nothing = counted_verdicts({"a": {("smiley", 0): FAIL}}, {"a": {"tool": {("smiley", 0): (0.5, 1)}}})
    assert nothing.counted_questions == [] and nothing.summaries(KINDS) == {}
    assert verdict_lines(nothing, {}, ["tool"])[0].startswith("verdicts that count: none")
    assert verdict_lines(counted_verdicts({}, {}), {}, []) == []
