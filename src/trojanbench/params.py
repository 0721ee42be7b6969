"""Constraints declared as data, checked with scikit-learn-style messages: one vocabulary for every check.

A method declares ``parameter_constraints = {"steps": Interval(int, 1, None), "lr": Interval(float, 0, None,
closed="neither"), "parameterization": Options({"fourier", "pixel"})}``; :func:`validate_params` raises
"The 'steps' parameter of TABOR must be an int in [1, inf). Got 0 instead."

A single value (a function's argument, a suite key) is checked with :func:`require`, which returns it (as an
``int`` for an int :class:`Interval`) or raises the same message: ``require("n", 0, Interval(int, 1, None))``
raises "n must be an int in [1, inf). Got 0 instead."
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError

_TYPE_WORDS = {int: "an int", float: "a float", bool: "a bool", str: "a str", dict: "a dict"}


def _type_word(kind: type) -> str:
    return _TYPE_WORDS.get(kind, f"a {kind.__name__}")


def _bound(value: float) -> str:
    return str(value) if isinstance(value, (int, np.integer)) else f"{value:g}"


@dataclass(frozen=True)
class Interval:
    """A number of ``kind`` (int or float) between ``low`` and ``high`` (None: unbounded).

    Bools are never numbers here; numpy integers count as ints (and numpy floats as floats). ``unit``, if
    given, is shown after the range: ``Interval(int, 1, None, unit="pixels")`` is "an int in [1, inf) (pixels)".
    ``optional`` also accepts ``None`` (a default the method works out itself).
    """

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"  # "both", "left", "right" or "neither"
    unit: str = ""
    optional: bool = False

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, (bool, np.bool_)):
            return False
        if self.kind is int and not isinstance(value, (int, np.integer)):
            return False
        if self.kind is float:
            if not isinstance(value, (int, float, np.integer, np.floating)):
                return False
            if math.isnan(value):
                return False
        left_ok = self.low is None or (value >= self.low if self.closed in ("both", "left") else value > self.low)
        right_ok = self.high is None or (value <= self.high if self.closed in ("both", "right") else value < self.high)
        return bool(left_ok and right_ok)

    def describe(self) -> str:
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        low = "-inf" if self.low is None else _bound(self.low)
        high = "inf" if self.high is None else _bound(self.high)
        unit = f" ({self.unit})" if self.unit else ""
        return ("None or " if self.optional else "") + f"{_type_word(self.kind)} in {left}{low}, {high}{right}{unit}"


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


@dataclass(frozen=True)
class InstanceOf:
    """A value of type ``kind`` (a path, a layer name, a mapping), or also ``None`` when ``optional``."""

    kind: type
    optional: bool = False

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        return isinstance(value, self.kind) and not (isinstance(value, bool) and self.kind is not bool)

    def describe(self) -> str:
        return ("None or " if self.optional else "") + _type_word(self.kind)


Constraint = Interval | Options | Boolean | InstanceOf


def constraint_message(name: str, value: Any, constraint: Constraint, owner: str | None = None) -> str:
    """The one wording of a broken constraint: "The 'steps' parameter of TABOR must be an int in [1, inf). Got 0
    instead." with an ``owner``, "steps must be an int in [1, inf). Got 0 instead." without."""
    subject = f"The {name!r} parameter of {owner}" if owner else name
    return f"{subject} must be {constraint.describe()}. Got {value!r} instead."


def require(name: str, value: Any, constraint: Constraint, *, owner: str | None = None) -> Any:
    """``value`` if ``constraint`` accepts it (as an ``int`` for an int :class:`Interval`), else a
    :class:`ConfigError` worded by :func:`constraint_message`."""
    if not constraint.accepts(value):
        raise ConfigError(constraint_message(name, value, constraint, owner))
    if isinstance(constraint, Interval) and constraint.kind is int and value is not None:
        return int(value)
    return value


def validate_params(owner: str, params: dict[str, Any], constraints: dict[str, Constraint]) -> None:
    """Raise :class:`ConfigError` for the first parameter that breaks its constraint.

    Parameters without a declared constraint are skipped (the conformance checks in
    :mod:`trojanbench.testing` report an undeclared parameter as a defect of the method)."""
    for name, constraint in constraints.items():
        if name in params:
            require(name, params[name], constraint, owner=owner)
