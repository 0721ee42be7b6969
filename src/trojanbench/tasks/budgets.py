"""Budgets written as a count (``"300"``) or as a share of some total (``"1%"``, ``"0.5%"``): the removal task's
data budgets and the replacement task's parameter budgets."""

from __future__ import annotations

import re

BUDGET_PATTERN = re.compile(r"^(\d+(?:\.\d+)?)(%?)$")


def parse_budget(budget: object) -> tuple[float, bool] | None:
    """``(value, is_share)`` for ``"300"`` (a whole count) or ``"1%"``/``"0.5%"`` (a percentage); ``None`` when
    ``budget`` is neither (the caller says what it expected)."""
    match = BUDGET_PATTERN.match(str(budget))
    if not match or (not match.group(2) and "." in match.group(1)):
        return None
    return float(match.group(1)), bool(match.group(2))
