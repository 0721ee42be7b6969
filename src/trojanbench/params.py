"""Hyperparameter constraints declared as data, checked with scikit-learn-style messages.

A method declares ``parameter_constraints = {"steps": Interval(int, 1, None), "lr": Interval(float, 0, None,
closed="neither"), "parameterization": Options({"fourier", "pixel"})}``; :func:`validate_params` raises
"The 'steps' parameter of TABOR must be an int in [1, inf). Got 0 instead."
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

_TYPE_WORDS = {int: "an int", float: "a float", bool: "a bool", str: "a str"}


@dataclass(frozen=True)
class Interval:
    """A number of ``kind`` (int or float) between ``low`` and ``high`` (None: unbounded)."""

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"  # "both", "left", "right" or "neither"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if self.kind is float and not isinstance(value, (int, float)):
            return False
        if isinstance(value, float) and math.isnan(value):
            return False
        left_ok = self.low is None or (value >= self.low if self.closed in ("both", "left") else value > self.low)
        right_ok = self.high is None or (value <= self.high if self.closed in ("both", "right") else value < self.high)
        return left_ok and right_ok

    def describe(self) -> str:
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{_TYPE_WORDS[self.kind]} in {left}{low}, {high}{right}"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    values: frozenset

    def __init__(self, values):
        object.__setattr__(self, "values", frozenset(values))

    def accepts(self, value: Any) -> bool:
        try:
            return value in self.values
        except TypeError:
            return False

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in sorted(self.values, key=str))


@dataclass(frozen=True)
class Boolean:
    """True or False."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return "a bool"


Constraint = Interval | Options | Boolean


def validate_params(owner: str, params: dict[str, Any], constraints: dict[str, Constraint]) -> None:
    """Raise :class:`ConfigError` for the first parameter that breaks its constraint."""
    for name, constraint in constraints.items():
        if name not in params:
            continue
        value = params[name]
        if not constraint.accepts(value):
            raise ConfigError(f"The {name!r} parameter of {owner} must be {constraint.describe()}. "
                              f"Got {value!r} instead.")
