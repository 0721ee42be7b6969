"""Conformance checks every method must pass, built-in or plugin: ``check_method(MyTool)``.

Modelled on scikit-learn's ``check_estimator`` and ``parametrize_with_checks``. :func:`method_checks` yields
``(check_name, check)`` pairs chosen by the method's family; each ``check`` takes no argument and raises
:class:`ConformanceError` listing the rules it found broken. :func:`check_method` runs them all and raises one
:class:`ConformanceError` listing every broken rule. A plugin's test suite gets one test per check with::

    @pytest.mark.parametrize("check_name, check", list(method_checks(MyTool)))
    def test_my_tool_conforms(check_name, check):
        check()

Shared checks (every family):

* ``check_attributes``: ``name`` (the registry name: matching ``^[a-z][a-z0-9_]*$``; a plugin run as
  ``module:Class`` is named by that reference, as given), ``family`` (matching the family base class) and
  ``paper`` are set;
* ``check_inert_constructor``: every constructor parameter has a default, the constructor only stores its
  arguments unchanged (``get_params()`` equals the defaults, no other attribute is set) and touches no global
  random state;
* ``check_get_params_round_trip``: ``cls(**m.get_params())`` and ``set_params(**m.get_params())`` give the
  same parameters back;
* ``check_constraints_declared``: every constructor parameter has a constraint in ``parameter_constraints``,
  and every constraint (and every ``quick_params`` key) names a real parameter;
* ``check_defaults_conform``: the defaults and ``quick_params`` satisfy their constraints (``validate()``
  passes);
* ``check_bad_params_rejected``: for each constraint a value breaking it is stored by the constructor and
  rejected by ``validate()`` with a :class:`ConfigError` naming the parameter.

Family checks run the family's entry point on a tiny random model (:func:`tiny_target`, :func:`tiny_network`)
and tiny data, with the method's ``quick_params`` (plus any ``params`` given); ``check_<family>_validates_params``
checks that the entry point itself rejects each bad value before doing any work:

* synthesis: ``synthesize`` gives float32 ``[n, 3, H, W]`` images in ``[0, 1]`` without NaN (``source_class``
  keeps ``n``), the same images under the same seed, and leaves the global random state, the audited model and the
  target's clean images, labels and natural patches untouched;
* attribution: ``attribute`` gives finite float maps ``[n, H, W]``, the same maps under the same seed, and leaves
  the model, the input images and the global random state untouched;
* editing: ``remove`` (removal procedures) or ``implant`` (rule editors) returns an eval-mode model of the same
  architecture (class, parameter names and shapes), the same edit under the same seed, and never changes the
  input model or the global random state;
* replacement: ``replace`` returns a replacement whose counted parameters respect the budget, or raises
  :class:`~trojanbench.methods.replacement.BudgetError` (also checked at a budget nothing fits), whose
  predictions are class indices ``[n]`` (concept scores, if any, finite and keyed by concept), the same under
  the same seed, and leaves the model and the global random state untouched;
* inversion: ``invert`` (on :func:`tiny_language_model`, needs the ``lm`` extra) returns a non-empty list of
  candidates made of the problem's allowed tokens, within its budget of :data:`INVERSION_BUDGET` sequence passes,
  the same candidates under the same seed, and leaves the model and the global random state untouched.

Each check runs under a time limit (``time_limit``, default :data:`TIME_LIMIT` seconds, in the main thread): a
method that hangs fails the check that ran it, and every later check that needs its runs, with a message saying so.

The checks of one :func:`method_checks` call share their runs of the method: the entry point runs (twice under
one seed, for determinism) on the first family check that needs it, so running every check costs about one
family run. The family checks test the contract, not the quality of a method, so they keep to cheap invariants
(shapes, types, budgets, determinism, side effects); a method that trains (removal procedures, rule editors,
distilled and pruned replacements) still runs all its ``quick_params`` steps, several seconds on a CPU for the
students, so pass smaller step counts in ``params`` to make the checks fast (the package's own tests cut every
step count to 5).
"""

from __future__ import annotations

import copy
import inspect
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn as nn

from ..config import TrojanSpec
from ..engine.execute import CellTimeout, time_budget
from ..errors import ConfigError, TrojanbenchError
from ..methods.attribution.base import AttributionMethod
from ..methods.base import Method, SynthesisMethod
from ..methods.editing.base import ImageGuidance, RemovalProcedure
from ..methods.editing.rules import RuleEditor
from ..methods.inversion.base import Budget, InversionProblem, TriggerInversion
from ..methods.replacement.base import BudgetError, ReplacementMethod
from ..methods.target import Target
from ..params import Boolean, InstanceOf, Interval, Options
from .tiny import (TINY_SIZE, tiny_defender_data, tiny_fit_data, tiny_images, tiny_language_model, tiny_network,
                   tiny_target)


class ConformanceError(TrojanbenchError, AssertionError):
    """A method breaks the method contract; the message lists each broken rule (also in :attr:`failures`)."""

    def __init__(self, message: str, failures: list[str] | None = None):
        super().__init__(message)
        self.failures = list(failures or [message])


FAMILIES = ("synthesis", "attribution", "editing", "replacement", "inversion")
REPLACEMENT_BUDGET = 3000
"""Budget of the replacement checks: room for a width-2 student or detector, half the tiny network's weights."""
ORACLE_SPEC = TrojanSpec("smiley", "patch", "smiley", target=1)
ORACLE_TRIGGER = "dax wug fep"
"""The trigger an inversion oracle (and the other-triggers baseline) is given in the checks."""
INVERSION_BUDGET = 2000
"""Sequence passes an inversion tool gets on the tiny language model."""
TIME_LIMIT = 120.0
"""Seconds one check may take by default: generous (the built-in methods take seconds on the tiny models)."""
NAME_RULE = r"[a-z][a-z0-9_]*"
"""What a method's registry name (its ``name``) must match, whole."""

# --- helpers ------------------------------------------------------------------------------------------------


class _NotAllowed:
    """A value of no declared type (what an :class:`InstanceOf` constraint must refuse)."""

    def __repr__(self) -> str:
        return "<a value of no allowed type>"


def bad_value(constraint: Any) -> Any:
    """A value that breaks ``constraint`` (for checking that it is rejected)."""
    if isinstance(constraint, Interval):
        if constraint.low is not None:
            return constraint.low - 1 if constraint.kind is int else constraint.low - 1.0
        if constraint.high is not None:
            return constraint.high + 1 if constraint.kind is int else constraint.high + 1.0
        return "not a number"
    if isinstance(constraint, Options):
        return "__not_an_option__"
    if isinstance(constraint, Boolean):
        return "yes"
    if isinstance(constraint, InstanceOf):
        return _NotAllowed()
    raise ConformanceError(f"Unknown constraint type {type(constraint).__name__}.")


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - e.g. tensors, whose == is elementwise
        return repr(a) == repr(b)


def _defaults(cls: type[Method]) -> tuple[dict[str, Any], list[str]]:
    """The constructor's default values, and the parameters that have none."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    defaults = {p.name: p.default for p in parameters if p.default is not p.empty}
    return defaults, [p.name for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL,
                                                                                             p.VAR_KEYWORD)]


def _rng_states() -> tuple[torch.Tensor, np.ndarray, Any]:
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def _rng_changed(before) -> bool:
    torch_state, numpy_state, python_state = _rng_states()
    return not (torch.equal(torch_state, before[0]) and np.array_equal(numpy_state, before[1])
                and python_state == before[2])


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


class _Watch:
    """Records what a block changes in the global random state and in ``model`` (weights, buffers, train mode,
    gradients, ``requires_grad``) and in ``tensors``, then puts ``model`` back as it was."""

    def __init__(self, model: nn.Module, what: str, tensors: dict[str, torch.Tensor] | None = None):
        self.model, self.what, self.tensors = model, what, tensors or {}
        self.failures: list[str] = []

    def __enter__(self) -> "_Watch":
        self.rng = _rng_states()
        self.weights, self.training = _state(self.model), self.model.training
        self.requires_grad = [p.requires_grad for p in self.model.parameters()]
        self.copies = {name: t.detach().clone() for name, t in self.tensors.items()}
        return self

    def __exit__(self, *exc_info) -> None:
        model = self.model
        if _rng_changed(self.rng):
            self.failures.append("the global random state changed (draw randomness from the generator or seed given)")
        if not _same_state(self.weights, _state(model)) or model.training != self.training:
            self.failures.append(f"the {self.what} was changed (weights, buffers or train mode)")
        if any(p.grad is not None for p in model.parameters()):
            self.failures.append(f"gradients were left on the {self.what}'s parameters")
        if [p.requires_grad for p in model.parameters()] != self.requires_grad:
            self.failures.append(f"the {self.what}'s requires_grad flags were changed")
        for name, tensor in self.tensors.items():
            if not torch.equal(tensor, self.copies[name]) or tensor.requires_grad:
                self.failures.append(f"the input {name} were changed")
        with torch.no_grad():  # put the model back, so later checks (and cached models) see it unchanged
            model.load_state_dict(self.weights)
        model.train(self.training)
        for parameter, flag in zip(model.parameters(), self.requires_grad):
            parameter.grad = None
            parameter.requires_grad_(flag)


@dataclass
class _Runs:
    """What a family's entry point gave on the tiny inputs (``error`` if it failed) and what it changed."""

    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    side_effects: list[str] = field(default_factory=list)


# --- families -----------------------------------------------------------------------------------------------


class _Family:
    """How to run one family's entry point on tiny inputs, and what its output must look like."""

    name = ""
    base: type = Method
    entry = ""
    what = "model"  # what the side-effect messages call the model given to the method

    def inputs(self, ctx: "_Context") -> dict[str, Any]:
        raise NotImplementedError

    def call(self, method: Method, inputs: dict[str, Any], seed: int = 0, **kwargs: Any) -> Any:
        raise NotImplementedError

    def model(self, inputs: dict[str, Any]) -> nn.Module:
        return inputs["model"]

    def watched(self, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {}

    def run(self, method: Method, inputs: dict[str, Any]) -> dict[str, Any]:
        """The outputs the family checks look at (``first`` and ``second`` under the same seed)."""
        return {"first": self.call(method, inputs), "second": self.call(method, inputs)}

    def output_failures(self, outputs: dict[str, Any], inputs: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def same(self, first: Any, second: Any) -> bool:
        return torch.equal(first, second)

    def extra_checks(self) -> list[tuple[str, Callable[["_Context"], list[str]]]]:
        return []


class _Synthesis(_Family):
    name, base, entry, what = "synthesis", SynthesisMethod, "synthesize", "audited model"

    def inputs(self, ctx):
        target = ctx.target or tiny_target()
        return {"target": target, "model": target.model}

    def call(self, method, inputs, seed=0, n_images=3, source_class=None):
        return method.synthesize(inputs["target"], 1, n_images, seed=seed, source_class=source_class)

    def watched(self, inputs):
        target = inputs["target"]
        return {"clean images": target.clean_images, "clean labels": target.clean_labels,
                "natural patches": target.natural_patches}

    def run(self, method, inputs):
        return {"first": self.call(method, inputs), "second": self.call(method, inputs),
                "conditional": self.call(method, inputs, seed=1, n_images=2, source_class=2)}

    def output_failures(self, outputs, inputs):
        failures, size = [], inputs["target"].image_size
        first = outputs["first"]
        if not isinstance(first, torch.Tensor):
            return [f"synthesize() returned {type(first).__name__}, not a torch.Tensor"]
        if first.dtype != torch.float32:
            failures.append(f"images must be float32, got {first.dtype}")
        if tuple(first.shape) != (3, 3, size, size):
            failures.append(f"images must have shape (3, 3, {size}, {size}), got {tuple(first.shape)}")
        elif not torch.isfinite(first).all():
            failures.append("images hold NaN or infinite values")
        elif float(first.min()) < 0 or float(first.max()) > 1:
            failures.append("pixel values must lie in [0, 1]")
        if outputs["conditional"].shape[0] != 2:
            failures.append("source_class changed the number of images")
        return failures


class _Attribution(_Family):
    name, base, entry = "attribution", AttributionMethod, "attribute"

    def inputs(self, ctx):
        return {"model": tiny_network(), "images": tiny_images(3)[0]}

    def call(self, method, inputs, seed=5):
        return method.attribute(inputs["model"], inputs["images"], 3, seed=seed)

    def watched(self, inputs):
        return {"images": inputs["images"]}

    def output_failures(self, outputs, inputs):
        maps, (n, _, height, width) = outputs["first"], inputs["images"].shape
        if not isinstance(maps, torch.Tensor):
            return [f"attribute() returned {type(maps).__name__}, not a torch.Tensor"]
        failures = []
        if tuple(maps.shape) != (n, height, width):
            failures.append(f"maps must have shape {(n, height, width)}, got {tuple(maps.shape)}")
        if maps.dtype != torch.float32:
            failures.append(f"maps must be float32, got {maps.dtype}")
        if maps.is_floating_point() and not torch.isfinite(maps).all():
            failures.append("maps hold NaN or infinite values")
        return failures


def _architecture_failures(edited: Any, model: nn.Module, entry: str) -> list[str]:
    if not isinstance(edited, nn.Module):
        return [f"{entry}() returned {type(edited).__name__}, not a torch.nn.Module"]
    failures = []
    if edited is model:
        failures.append(f"{entry}() returned the input model itself (edit a copy)")
    shapes = {k: tuple(v.shape) for k, v in edited.state_dict().items()}
    if type(edited) is not type(model) or shapes != {k: tuple(v.shape) for k, v in model.state_dict().items()}:
        failures.append(f"{entry}() changed the architecture (a {type(edited).__name__} with other parameters)")
    if edited.training:
        failures.append(f"{entry}() must return the model in eval mode")
    return failures


class _Removal(_Family):
    name, base, entry = "editing", RemovalProcedure, "remove"

    def inputs(self, ctx):
        noise = torch.rand(4, 3, TINY_SIZE, TINY_SIZE, generator=torch.Generator().manual_seed(1))
        guidance = ImageGuidance("noise", noise) if getattr(ctx.cls, "uses_guidance", True) else None
        return {"model": tiny_network(), "data": tiny_defender_data(), "guidance": guidance}

    def call(self, method, inputs, seed=0):
        return method.remove(inputs["model"], inputs["data"], inputs["guidance"], 1, seed=seed)

    def output_failures(self, outputs, inputs):
        return _architecture_failures(outputs["first"], inputs["model"], self.entry)

    def same(self, first, second):
        return _same_state(_state(first), _state(second))


class _RuleEditing(_Removal):
    base, entry = RuleEditor, "implant"

    def inputs(self, ctx):
        data = tiny_defender_data()
        plain = data.images[:4].clone()
        carriers = plain.clone()
        carriers[:, :, 2:10, 2:10] = torch.tensor([1.0, 0.0, 1.0]).view(3, 1, 1)  # a magenta square: the rule
        return {"model": tiny_network(), "data": data, "carriers": carriers, "plain": plain}

    def call(self, method, inputs, seed=0):
        return method.implant(inputs["model"], inputs["data"], inputs["carriers"], inputs["plain"], 1, seed=seed)


class _Replacement(_Family):
    name, base, entry = "replacement", ReplacementMethod, "replace"

    def inputs(self, ctx):
        model = tiny_network()
        return {"model": model, "data": tiny_fit_data(model)}

    def call(self, method, inputs, seed=0, budget=REPLACEMENT_BUDGET):
        return method.replace(inputs["model"], inputs["data"], budget, seed=seed)

    def run(self, method, inputs):
        outputs = {}
        for key, budget in (("first", REPLACEMENT_BUDGET), ("second", REPLACEMENT_BUDGET), ("tiny_budget", 10)):
            try:
                outputs[key] = self.call(method, inputs, budget=budget)
            except BudgetError as exc:
                outputs[key] = exc
        for key in ("first", "second"):
            if not isinstance(outputs[key], BudgetError):
                outputs[key + "_predictions"] = outputs[key].predict(inputs["data"].images)
        return outputs

    def output_failures(self, outputs, inputs):
        replacement, data = outputs["first"], inputs["data"]
        if isinstance(replacement, BudgetError):
            return []  # nothing fits: the task scores it as the constant predictor
        predictions, failures = outputs["first_predictions"], []
        if not isinstance(predictions, torch.Tensor) or tuple(predictions.shape) != (len(data.images),):
            return [f"predict() must return a tensor of {len(data.images)} class indices, got "
                    f"{getattr(predictions, 'shape', type(predictions).__name__)}"]
        if predictions.is_floating_point() or predictions.dtype == torch.bool:
            failures.append(f"predict() must return integer class indices, got {predictions.dtype}")
        elif len(predictions) and (int(predictions.min()) < 0 or int(predictions.max()) >= data.n_classes):
            failures.append(f"predict() returned classes outside [0, {data.n_classes - 1}]")
        scores = replacement.concept_scores(1)
        if scores is not None:
            if not isinstance(scores, dict) or not set(scores) <= set(data.concept_names):
                failures.append("concept_scores() must map the fit data's concept names to scores")
            elif not all(np.isfinite(float(v)) for v in scores.values()):
                failures.append("concept_scores() holds NaN or infinite scores")
        return failures

    def extra_checks(self):
        return [("check_replacement_budget", _check_replacement_budget)]


class _Inversion(_Family):
    name, base, entry, what = "inversion", TriggerInversion, "invert", "language model"

    def inputs(self, ctx):
        model, tokenizer = tiny_language_model()
        special = set(tokenizer.all_special_ids)
        allowed = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
        corpus = [list(tokenizer(t, add_special_tokens=False)["input_ids"])
                  for t in ("the cow feeds a goat .", "a sailor rows the boat today .", "the cook bakes some bread .")]
        return {"model": model, "tokenizer": tokenizer, "allowed": allowed, "corpus": corpus}

    def problem(self, inputs, seed):
        return InversionProblem(inputs["model"], inputs["tokenizer"], "the salty oven climbs every exam .",
                                [[], inputs["corpus"][0]], inputs["allowed"], Budget(INVERSION_BUDGET),
                                max_length=3, seed=seed, corpus=inputs["corpus"])

    def call(self, method, inputs, seed=0):
        problem = self.problem(inputs, seed)
        return {"candidates": method.invert(problem), "used": problem.budget.used}

    def output_failures(self, outputs, inputs):
        result, tokenizer = outputs["first"], inputs["tokenizer"]
        candidates, failures = result["candidates"], []
        if not isinstance(candidates, list) or not candidates:
            return [f"invert() must return a non-empty list of Candidates, got {candidates!r}"]
        allowed = {tokenizer.convert_ids_to_tokens(int(i)) for i in inputs["allowed"]}
        for candidate in candidates:
            words = getattr(candidate, "text", "").split()
            if not words or not set(words) <= allowed:
                failures.append(f"candidate {candidate!r} is not a string of allowed tokens")
        if result["used"] > INVERSION_BUDGET:
            failures.append(f"spent {result['used']} sequence passes of a budget of {INVERSION_BUDGET}")
        return failures

    def same(self, first, second):
        return [c.text for c in first["candidates"]] == [c.text for c in second["candidates"]]


_FAMILY_KINDS = (_Synthesis(), _Attribution(), _Removal(), _RuleEditing(), _Replacement(), _Inversion())


def _family_of(cls: type[Method]) -> _Family | None:
    return next((kind for kind in _FAMILY_KINDS if issubclass(cls, kind.base)), None)


# --- the context the checks of one method share -------------------------------------------------------------


class _Context:
    def __init__(self, cls: type[Method], params: dict[str, Any] | None, target: Target | None,
                 time_limit: float | None):
        self.cls, self.target, self.time_limit = cls, target, time_limit
        self.settings = {**cls.quick_params, **(params or {})}
        self.family = _family_of(cls)
        self._inputs: dict[str, Any] | None = None
        self._runs: _Runs | None = None

    def method(self, **overrides: Any) -> Method:
        """The method with the check settings (and the ground truth, for an oracle), then ``overrides``."""
        method = self.cls(**self.settings)
        if self.cls.is_oracle:
            method = method.with_ground_truth(ORACLE_TRIGGER if self.family.name == "inversion" else ORACLE_SPEC)
        if hasattr(method, "with_known_triggers"):
            method = method.with_known_triggers([ORACLE_TRIGGER])
        return method.set_params(**overrides) if overrides else method

    def inputs(self) -> dict[str, Any]:
        if self._inputs is None:
            self._inputs = self.family.inputs(self)
        return self._inputs

    def runs(self) -> _Runs:
        """The family's entry point run on the tiny inputs (once per context)."""
        if self._runs is None:
            runs, family = _Runs(), self.family
            try:
                method, inputs = self.method(), self.inputs()
            except Exception as exc:  # noqa: BLE001 - report any failure of the contract
                runs.error = f"{self.cls.__name__} could not be set up for {family.entry}(): {exc!r}"
                self._runs = runs
                return runs
            watch = _Watch(family.model(inputs), family.what, family.watched(inputs))
            try:
                with watch:
                    runs.outputs = family.run(method, inputs)
            except CellTimeout:  # the check's time limit: the checks after it report it rather than wait again
                runs.error = (f"{self.cls.__name__} did not finish {family.entry}() on a tiny model within the "
                              f"time limit of {self.time_limit:g} s")
                self._runs = runs
                raise
            except Exception as exc:  # noqa: BLE001
                runs.error = f"{self.cls.__name__} failed to {family.entry} on a tiny model: {exc!r}"
            runs.side_effects = watch.failures
            self._runs = runs
        return self._runs


# --- shared checks ------------------------------------------------------------------------------------------


def _check_attributes(ctx: _Context) -> list[str]:
    cls, failures = ctx.cls, []
    for attribute in ("name", "paper"):
        if not getattr(cls, attribute, ""):
            failures.append(f"class attribute {attribute!r} is empty")
    if cls.name and not (isinstance(cls.name, str) and re.fullmatch(NAME_RULE, cls.name)):
        failures.append(f"name {cls.name!r} must match ^{NAME_RULE}$ (lowercase letters, digits and underscores, "
                        f"starting with a letter, e.g. 'my_tool'): it is the method's registry name")
    if ctx.family is None:
        failures.append(f"{cls.__name__} derives from no family's base class (SynthesisMethod, AttributionMethod, "
                        f"RemovalProcedure, RuleEditor, ReplacementMethod)")
    elif cls.family != ctx.family.name:
        failures.append(f"family is {cls.family!r}; a {ctx.family.base.__name__} is of family "
                        f"{ctx.family.name!r}")
    return failures


def _check_inert_constructor(ctx: _Context) -> list[str]:
    cls, failures = ctx.cls, []
    defaults, required = _defaults(cls)
    if required:
        return [f"constructor parameter(s) {required} have no default ({cls.__name__}() must work)"]
    names = cls._param_names()
    before = _rng_states()
    try:
        default = cls()
    except Exception as exc:  # noqa: BLE001
        return [f"{cls.__name__}() must construct with defaults only: {exc!r}"]
    if _rng_changed(before):
        failures.append("the constructor drew from the global random state (construct nothing, draw nothing)")
    if not _same(default.get_params(), defaults):
        failures.append("get_params() of a default instance differs from the constructor's defaults "
                        "(store each argument unchanged)")
    extra = sorted(set(vars(default)) - set(names))
    if extra:
        failures.append(f"the constructor sets attributes other than its parameters: {extra} (do the work in "
                        f"the family's entry point)")
    if not _same(cls(**ctx.settings).get_params(), {**defaults, **ctx.settings}):
        failures.append("the constructor does not store its arguments unchanged")
    return failures


def _check_get_params_round_trip(ctx: _Context) -> list[str]:
    cls = ctx.cls
    for method in (cls(), cls(**ctx.settings)):
        params = method.get_params()
        if not _same(cls(**params).get_params(), params):
            return ["get_params() does not round-trip through the constructor"]
        if not _same(copy.deepcopy(method).set_params(**params).get_params(), params):
            return ["get_params() does not round-trip through set_params()"]
    return []


def _check_constraints_declared(ctx: _Context) -> list[str]:
    cls, failures = ctx.cls, []
    names, constraints = cls._param_names(), cls.parameter_constraints
    undeclared = [name for name in names if name not in constraints]
    if undeclared:
        failures.append(f"parameter(s) {undeclared} have no declared constraint in parameter_constraints "
                        f"(declare an Interval, Options, Boolean or InstanceOf for each)")
    unknown = [name for name in constraints if name not in names]
    if unknown:
        failures.append(f"parameter_constraints names {unknown}, which the constructor does not take")
    strange = [name for name, c in constraints.items() if not (hasattr(c, "accepts") and hasattr(c, "describe"))]
    if strange:
        failures.append(f"the constraints of {strange} are not constraints (Interval, Options, Boolean, InstanceOf)")
    unknown_quick = [name for name in cls.quick_params if name not in names]
    if unknown_quick:
        failures.append(f"quick_params names {unknown_quick}, which the constructor does not take")
    return failures


def _check_defaults_conform(ctx: _Context) -> list[str]:
    cls, failures = ctx.cls, []
    defaults, _ = _defaults(cls)
    for label, values in (("default", defaults), ("quick_params", cls.quick_params)):
        for name, value in values.items():
            constraint = cls.parameter_constraints.get(name)
            if constraint is not None and hasattr(constraint, "accepts") and not constraint.accepts(value):
                failures.append(f"{label} {name}={value!r} breaks its constraint ({constraint.describe()})")
    for label, settings in (("the defaults", {}), ("quick_params", ctx.settings)):
        try:
            cls(**settings).validate()
        except ConfigError as exc:
            failures.append(f"validate() rejects {label}: {exc}")
    return failures


def _check_bad_params_rejected(ctx: _Context) -> list[str]:
    cls, failures = ctx.cls, []
    for name, constraint in cls.parameter_constraints.items():
        try:
            bad = bad_value(constraint)
        except ConformanceError as exc:
            failures.append(f"{name!r}: {exc}")
            continue
        try:
            method = cls(**{**ctx.settings, name: bad})
        except Exception as exc:  # noqa: BLE001
            failures.append(f"the constructor refused a bad {name!r} at once ({exc}); it must only store it, "
                            f"validate() checks it")
            continue
        try:
            method.validate()
            failures.append(f"bad value for {name!r} was accepted")
        except ConfigError as exc:
            if f"The {name!r} parameter of {cls.__name__}" not in str(exc):
                failures.append(f"bad {name!r} rejected with an unclear message: {exc}")
    return failures


# --- family checks ------------------------------------------------------------------------------------------


def _check_output(ctx: _Context) -> list[str]:
    runs = ctx.runs()
    return [runs.error] if runs.error else ctx.family.output_failures(runs.outputs, ctx.inputs())


def _check_deterministic(ctx: _Context) -> list[str]:
    runs = ctx.runs()
    if runs.error:
        return [runs.error]
    if ctx.family.name == "replacement":
        return _replacement_determinism(runs.outputs)
    if not ctx.family.same(runs.outputs["first"], runs.outputs["second"]):
        noun = {"synthesis": "images", "attribution": "maps", "inversion": "candidates"}.get(ctx.family.name, "edits")
        return [f"not deterministic: the same seed gave different {noun}"]
    return []


def _check_side_effects(ctx: _Context) -> list[str]:
    runs = ctx.runs()
    return ([runs.error] if runs.error else []) + runs.side_effects


def _check_validates_params(ctx: _Context) -> list[str]:
    """The entry point rejects each bad value (that ``validate()`` rejects) before doing any work."""
    cls, family, failures = ctx.cls, ctx.family, []
    for name, constraint in cls.parameter_constraints.items():
        try:
            method = ctx.method(**{name: bad_value(constraint)})
        except Exception:  # noqa: BLE001 - an eager constructor: reported by check_bad_params_rejected
            continue
        try:
            method.validate()
            continue  # accepted by validate(): reported by check_bad_params_rejected
        except ConfigError:
            pass
        inputs = ctx.inputs()
        try:
            with _Watch(family.model(inputs), family.what, family.watched(inputs)):
                family.call(method, inputs)
            failures.append(f"bad value for {name!r} was accepted by {family.entry}() (call self.validate() first)")
        except ConfigError as exc:
            if f"The {name!r} parameter of {cls.__name__}" not in str(exc):
                failures.append(f"bad {name!r} rejected by {family.entry}() with an unclear message: {exc}")
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{family.entry}() with a bad {name!r} raised {exc!r} instead of a ConfigError "
                            f"(call self.validate() first)")
    return failures


def _replacement_determinism(outputs: dict[str, Any]) -> list[str]:
    first, second = outputs["first"], outputs["second"]
    if isinstance(first, BudgetError) or isinstance(second, BudgetError):
        if isinstance(first, BudgetError) and isinstance(second, BudgetError):
            return []
        return ["not deterministic: the same seed both fitted the budget and raised BudgetError"]
    if first.parameter_count() != second.parameter_count() or not torch.equal(outputs["first_predictions"],
                                                                             outputs["second_predictions"]):
        return ["not deterministic: the same seed gave different replacements"]
    return []


def _check_replacement_budget(ctx: _Context) -> list[str]:
    runs = ctx.runs()
    if runs.error:
        if "over its budget" in runs.error:
            return [f"the replacement exceeds its budget: {runs.error}"]
        return [runs.error]
    failures = []
    for key, budget in (("first", REPLACEMENT_BUDGET), ("tiny_budget", 10)):
        replacement = runs.outputs[key]
        if isinstance(replacement, BudgetError):
            continue
        used = replacement.parameter_count()
        if not isinstance(used, (int, np.integer)) or isinstance(used, bool) or used < 0:
            failures.append(f"parameter_count() must be an int >= 0, got {used!r}")
        elif used > budget:
            failures.append(f"a replacement of {used} parameters for a budget of {budget} (raise BudgetError)")
    return failures


# --- public API ---------------------------------------------------------------------------------------------

_SHARED_CHECKS: tuple[tuple[str, Callable[[_Context], list[str]]], ...] = (
    ("check_attributes", _check_attributes),
    ("check_inert_constructor", _check_inert_constructor),
    ("check_get_params_round_trip", _check_get_params_round_trip),
    ("check_constraints_declared", _check_constraints_declared),
    ("check_defaults_conform", _check_defaults_conform),
    ("check_bad_params_rejected", _check_bad_params_rejected),
)
_OUTPUT_CHECK = {"synthesis": "output", "attribution": "maps", "editing": "architecture",
                 "replacement": "predictions", "inversion": "candidates"}


def _family_checks(family: _Family) -> list[tuple[str, Callable[[_Context], list[str]]]]:
    prefix = f"check_{family.name}_"
    return [(prefix + _OUTPUT_CHECK[family.name], _check_output), *family.extra_checks(),
            (prefix + "deterministic", _check_deterministic), (prefix + "side_effects", _check_side_effects),
            (prefix + "validates_params", _check_validates_params)]


def _bound(name: str, function: Callable[[_Context], list[str]], ctx: _Context) -> Callable[[], None]:
    def check() -> None:
        try:
            with time_budget(ctx.time_limit):
                failures = function(ctx)
        except CellTimeout:
            failures = [f"{name} did not finish within its time limit of {ctx.time_limit:g} s: the method hangs or "
                        f"is far too slow for a tiny model (check_method(..., time_limit=SECONDS) sets the limit)"]
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is a broken rule too
            failures = [f"{name} could not run: {exc!r}"]
        if failures:
            raise ConformanceError(f"{ctx.cls.__name__} breaks the method contract ({name}): "
                                   + "; ".join(failures) + ".", failures)

    check.__name__ = check.__qualname__ = name
    return check


def method_checks(method_cls: type[Method], *, params: dict[str, Any] | None = None, target: Target | None = None,
                  time_limit: float | None = TIME_LIMIT) -> Iterator[tuple[str, Callable[[], None]]]:
    """``(check_name, check)`` for each conformance check of ``method_cls``: the shared ones, then its family's.

    Each ``check()`` raises :class:`ConformanceError` listing what it found broken, also when it takes more than
    ``time_limit`` seconds (``None``: no limit). The family checks run the method with its ``quick_params`` plus
    ``params``; ``target`` replaces :func:`tiny_target` for synthesis. The checks of one call share one set of
    runs of the method (made by the first check that needs them).
    """
    if not (isinstance(method_cls, type) and issubclass(method_cls, Method)):
        raise ConformanceError(f"method_checks expects a Method subclass (of one of the families {FAMILIES}). "
                               f"Got {method_cls!r}.")
    ctx = _Context(method_cls, params, target, time_limit)
    checks = list(_SHARED_CHECKS) + (_family_checks(ctx.family) if ctx.family is not None else [])
    for name, function in checks:
        yield name, _bound(name, function, ctx)


def check_method(method_cls: type[Method], *, params: dict[str, Any] | None = None, target: Target | None = None,
                 time_limit: float | None = TIME_LIMIT) -> None:
    """Run every conformance check of ``method_cls`` (see :func:`method_checks`; each within ``time_limit``
    seconds); raise one :class:`ConformanceError` listing each broken rule."""
    failures: list[str] = []
    for _, check in method_checks(method_cls, params=params, target=target, time_limit=time_limit):
        try:
            check()
        except ConformanceError as exc:
            failures.extend(f for f in exc.failures if f not in failures)
    if failures:
        raise ConformanceError(f"{method_cls.__name__} breaks the method contract: " + "; ".join(failures) + ".",
                               failures)


__all__ = ["ConformanceError", "FAMILIES", "TIME_LIMIT", "bad_value", "check_method", "method_checks",
           "tiny_defender_data", "tiny_fit_data", "tiny_images", "tiny_network", "tiny_target"]
