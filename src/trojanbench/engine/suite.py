"""Benchmark suites: YAML <-> :class:`Suite`, one-to-one, validated before any work starts.

```yaml
name: default
model: trojaned            # zoo name or .safetensors path (card beside it)
trojans: null              # null: the trojans in the model's card; or a trojan spec YAML path
methods:                   # registry names, module:Class plugins, or {name, params}
  - tabor
  - {name: target_fourier_fv, params: {steps: 128}}
judges: [concept, appearance, robust]
judge_settings: {}         # per judge, its settings, e.g. {clip: {weights: /models/clip.safetensors, model: ViT-B-32}}
seeds: [0, 1, 2]
n_images: 10
cell_budget: 40000         # images the audited model may process (forward passes) in one cell; null: no budget
cell_timeout: 1800         # wall-clock guard (seconds) against a hung method; past it a cell fails, transiently
data: null                 # null: the built-in world; or a folder of your own images (ImageFolder layout)
image_size: null           # with data: the side images are resized to (null: the model card's, else 224)
```

A cell's limit is its work (``cell_budget``), not the clock, so a busy or slow machine makes a run slower, never
different. ``cell_timeout`` only stops a method that hangs; such a cell (or one that ran out of memory) is computed
again on the next run of the same command (see :mod:`trojanbench.engine.execute`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

from ..config import load_yaml
from ..errors import ConfigError
from ..params import Constraint, Interval, require

DEFAULT_SUITE_PATH = Path(__file__).resolve().parent.parent / "assets" / "suites" / "default.yaml"
DEFAULT_CELL_BUDGET = 40000
"""Images one cell may pass through the audited model: about 15x what the heaviest shipped tool needs at its
default settings (TABOR, 2700), so only a runaway method reaches it."""
DEFAULT_CELL_TIMEOUT = 1800.0
"""The wall-clock guard, in seconds: generous, since it is only against a hung method (a default cell takes
seconds on a quiet laptop, and 20x longer on a heavily loaded one)."""


DEFAULT_JUDGES = ("concept", "appearance", "robust")
"""The shipped judges: three networks that share no weights, architecture or objective."""


@dataclass(frozen=True)
class MethodSpec:
    """A method by name (or ``module:Class``) with hyperparameter overrides."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}

    @property
    def label(self) -> str:
        """How the method is shown: its name, with the parameters the suite sets (``name[key=value]``)."""
        return self.name + (f"[{','.join(f'{k}={v}' for k, v in sorted(self.params.items()))}]" if self.params else "")


@dataclass(frozen=True)
class Suite:
    """One benchmark configuration (see module docstring)."""

    name: str = "default"
    model: str = "trojaned"
    trojans: str | None = None
    methods: tuple[MethodSpec, ...] = ()
    judges: tuple[str, ...] = DEFAULT_JUDGES
    judge_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_images: int = 10
    cell_budget: int | None = DEFAULT_CELL_BUDGET
    cell_timeout: float = DEFAULT_CELL_TIMEOUT
    data: str | None = None
    image_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["methods"] = [m.to_dict() for m in self.methods]
        out["judges"], out["seeds"] = list(self.judges), list(self.seeds)
        for key in ("data", "image_size", "judge_settings"):  # the built-in world's runs record what they always did
            if not out[key]:
                del out[key]
        return out

    def settings_of(self, judge: str) -> dict[str, Any]:
        """The settings the suite gives ``judge`` (none: its defaults)."""
        return dict(self.judge_settings.get(judge, {}))


def _method_spec(raw: Any, index: int) -> MethodSpec:
    where = f"methods[{index}]"
    if isinstance(raw, str) and raw:
        return MethodSpec(raw)
    if isinstance(raw, dict):
        extra = sorted(set(raw) - {"name", "params"})
        if extra or not isinstance(raw.get("name"), str):
            raise ConfigError(f"{where} must be a method name or a mapping {{name, params}}. Got {raw!r}.")
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{where}: 'params' must be a mapping. Got {params!r}.")
        return MethodSpec(raw["name"], dict(params))
    raise ConfigError(f"{where} must be a method name or a mapping {{name, params}}. Got {raw!r}.")


def parse_suite_config(raw: Any, *, base_dir: Path | None = None) -> Suite:
    """Validate a raw mapping into a :class:`Suite` (names are checked against registries later)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"A suite must be a YAML mapping. Got {type(raw).__name__}.")
    known = {f.name for f in dataclasses.fields(Suite)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"Unknown suite key(s) {unknown}. Allowed keys: {sorted(known)}.")
    methods = raw.get("methods")
    if not isinstance(methods, list) or not methods:
        raise ConfigError("A suite needs a non-empty 'methods' list.")
    seeds = raw.get("seeds", [0, 1, 2])
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"'seeds' must be a non-empty list of distinct ints >= 0. Got {seeds!r}.")
    judges = raw.get("judges", list(DEFAULT_JUDGES))
    if not isinstance(judges, list) or not judges or not all(isinstance(j, str) for j in judges):
        raise ConfigError(f"'judges' must be a non-empty list of judge names. Got {judges!r}.")
    judge_settings = check_judge_settings(raw.get("judge_settings") or {}, judges, "'judge_settings'")
    n_images = require("'n_images'", raw.get("n_images", 10), Interval(int, 1, 100))
    timeout = require("'cell_timeout'", raw.get("cell_timeout", DEFAULT_CELL_TIMEOUT),
                      Interval(float, 0, None, closed="neither", unit="seconds"))
    budget = raw.get("cell_budget", DEFAULT_CELL_BUDGET)
    if budget is not None:
        budget = require("'cell_budget'", budget, Interval(int, 1, None, unit="images"))
    trojans = raw.get("trojans")
    if trojans is not None:
        if not isinstance(trojans, str):
            raise ConfigError(f"'trojans' must be null or a path to a trojan spec YAML. Got {trojans!r}.")
        path = Path(trojans)
        trojans = str(path if path.is_absolute() or base_dir is None else (base_dir / path).resolve())
    model = raw.get("model", "trojaned")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"'model' must be a zoo name or a checkpoint path. Got {model!r}.")
    data = raw.get("data")
    if data is not None:
        if not isinstance(data, str) or not data:
            raise ConfigError(f"'data' must be null or the path of an image folder. Got {data!r}.")
        path = Path(data).expanduser()
        data = str(path if path.is_absolute() or base_dir is None else (base_dir / path).resolve())
    image_size = raw.get("image_size")
    if image_size is not None:
        image_size = require("'image_size'", image_size, Interval(int, 8, None, unit="pixels"))
    return Suite(name=str(raw.get("name", "suite")), model=model, trojans=trojans,
                 methods=tuple(_method_spec(m, i) for i, m in enumerate(methods)),
                 judges=tuple(judges), judge_settings=judge_settings, seeds=tuple(seeds), n_images=n_images,
                 cell_budget=budget, cell_timeout=float(timeout), data=data, image_size=image_size)


def check_judge_settings(settings: Any, judges: Iterable[str], where: str) -> dict[str, dict[str, Any]]:
    """``settings`` checked to map judges the run uses to mappings of setting names to values."""
    if not isinstance(settings, dict) or not all(isinstance(v, dict) and all(isinstance(k, str) for k in v)
                                                 for v in settings.values()):
        raise ConfigError(f"{where} must map judge names to mappings of settings, e.g. {{clip: {{weights: "
                          f"FILE}}}}. Got {settings!r}.")
    unused = sorted(set(settings) - set(judges))
    if unused:
        raise ConfigError(f"{where} gives settings to judge(s) {unused}, which the run does not use (its judges: "
                          f"{', '.join(judges)}). Add them to the judges, or remove their settings.")
    return {name: dict(values) for name, values in settings.items()}


def load_suite(reference: str | Path | None = None) -> Suite:
    """A suite from a YAML file, or a shipped suite by name (``default``, ``casper2023-imagenet``)."""
    if reference is None or reference == "default":
        path = DEFAULT_SUITE_PATH
    else:
        path = Path(reference)
        if not path.suffix and not path.exists():
            shipped = DEFAULT_SUITE_PATH.parent / f"{reference}.yaml"
            if not shipped.is_file():
                raise ConfigError(f"No suite file {str(reference)!r} and no shipped suite of that name "
                                  f"(shipped: default, casper2023-imagenet). Give a path to a suite YAML.")
            path = shipped
    return parse_suite_config(load_yaml(path), base_dir=path.parent)


def split_task_keys(raw: Any, own: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A task suite's mapping split into the shared suite keys and the task's ``own`` keys."""
    if not isinstance(raw, dict):
        raise ConfigError(f"A suite must be a YAML mapping. Got {type(raw).__name__}.")
    own = set(own)
    return {k: v for k, v in raw.items() if k not in own}, {k: v for k, v in raw.items() if k in own}


def first_of_each_kind(trojans: Iterable[Any]) -> list[Any]:
    """The first trojan of each kind, in order (what ``--quick`` keeps)."""
    firsts: dict[str, Any] = {}
    for spec in trojans:
        firsts.setdefault(spec.kind, spec)
    return list(firsts.values())


def given_names(names: Iterable[str] | None, option: str) -> list[str] | None:
    """The names a run option (``--methods``, ``--trojans``) gives: ``None`` when not given (the suite's own);
    an option given but empty is an error, never a silent fall-back to the whole suite."""
    if names is None:
        return None
    names = [name for name in names if name.strip()] if not isinstance(names, str) else [names]
    if not names:
        raise ConfigError(f"{option} was given but names nothing. Name at least one (comma-separated), or leave "
                          f"{option} out to use the suite's.")
    return names


def with_overrides(suite: Suite, *, methods: Iterable[str] | None = None, seeds: int | None = None,
                   quick: bool = False, model: str | None = None, data: str | Path | None = None,
                   image_size: int | None = None, judges: Iterable[str] | None = None,
                   judge_settings: dict[str, dict[str, Any]] | None = None, takes_data: bool = False) -> Suite:
    """``suite`` with the command line's ``--methods``, ``--seeds`` (0..N-1), ``--model``, ``--data``,
    ``--image-size`` and ``--judges`` in place of its own, ``judge_settings`` (e.g. ``--clip-weights``) over its
    own, and only its first seed under ``quick``; a suite on a user's image folder is refused unless the task
    ``takes_data``."""
    judges = given_names(judges, "--judges")
    given = {"model": model, "data": None if data is None else str(Path(data).expanduser().resolve()),
             "image_size": image_size, "judges": None if judges is None else tuple(judges)}
    suite = dataclasses.replace(suite, **{k: v for k, v in given.items() if v is not None})
    merged = {name: {**suite.settings_of(name), **values} for name, values in (judge_settings or {}).items()}
    kept = {name: values for name, values in suite.judge_settings.items() if name in suite.judges}
    suite = dataclasses.replace(suite, judge_settings=check_judge_settings({**kept, **merged}, suite.judges,
                                                                           "The judge settings"))
    if suite.data is not None and not takes_data:
        raise ConfigError(f"Suite {suite.name!r} names an image folder ('data: {suite.data}'), but this task runs "
                          f"only in the built-in world so far; your own data applies to the rediscovery, localization "
                          f"and removal tasks (`trojanbench run [--task TASK] --data DIR`). Remove 'data' from the "
                          f"suite.")
    methods = given_names(methods, "--methods")
    if methods:
        suite = dataclasses.replace(suite, methods=tuple(MethodSpec(m) for m in methods))
    if seeds is not None:
        seeds = require("--seeds", seeds, Interval(int, 1, None))
        suite = dataclasses.replace(suite, seeds=tuple(range(seeds)))
    return dataclasses.replace(suite, seeds=suite.seeds[:1]) if quick else suite


def shipped_or_given(reference: str | Path | None, task: str) -> Path:
    """The suite file of a task: the shipped ``<task>.yaml`` for ``None``, ``"default"`` or the task's name, else
    the path given (which must exist)."""
    path = DEFAULT_SUITE_PATH.parent / f"{task}.yaml" if reference in (None, "default", task) else Path(reference)
    if not path.is_file():
        raise ConfigError(f"No {task} suite file {str(reference)!r}. Give a path to a suite YAML, or omit --suite for "
                          f"the shipped {task} suite.")
    return path


@dataclass(kw_only=True)
class Plan:
    """A validated run of a task: its resolved configuration (a :class:`Suite`, or a task's suite wrapping one)
    and the cells it plans. Bad input fails while a plan is made, before any cell runs."""

    config: Any
    cells: list
    quick: bool = False
    plugins: tuple[str, ...] = ()

    @property
    def suite(self) -> Suite:
        return self.config if isinstance(self.config, Suite) else self.config.suite


@dataclass(frozen=True)
class TaskSuite:
    """A task's suite: the shared keys (:class:`Suite`, in ``suite``) plus the task's own keys, declared as the
    subclass's fields with their defaults. Each own key is checked by its entry in ``constraints`` or converted
    (and checked) by its entry in ``converters``; an own key without either is a defect of the subclass."""

    suite: Suite
    task: ClassVar[str] = ""
    constraints: ClassVar[dict[str, Constraint]] = {}
    converters: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    @classmethod
    def own_keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name != "suite"]

    @classmethod
    def parse(cls, raw: Any, *, base_dir: Path | None = None) -> "TaskSuite":
        """Validate a raw mapping (shared keys as in any suite, then the task's own)."""
        shared, own = split_task_keys(raw, cls.own_keys())
        cls.check_declared()
        values = {name: cls.converters[name](value) if name in cls.converters
                  else require(f"'{name}'", value, cls.constraints[name]) for name, value in own.items()}
        return cls(parse_suite_config(shared, base_dir=base_dir), **values)

    @classmethod
    def check_declared(cls) -> None:
        """Every own key has a constraint or a converter, and each names an own key (a defect otherwise)."""
        keys, declared = set(cls.own_keys()), set(cls.constraints) | set(cls.converters)
        if keys != declared:
            raise TypeError(f"{cls.__name__}: keys without a constraint or converter {sorted(keys - declared)}, "
                            f"constraints or converters of no key {sorted(declared - keys)}.")

    @classmethod
    def load(cls, reference: str | Path | None = None) -> "TaskSuite":
        """The task's suite from a YAML file, or its shipped suite (``assets/suites/<task>.yaml``)."""
        path = shipped_or_given(reference, cls.task)
        return cls.parse(load_yaml(path), base_dir=path.parent)

    def to_dict(self) -> dict[str, Any]:
        own = {name: getattr(self, name) for name in self.own_keys()}
        return {**self.suite.to_dict(), **{k: list(v) if isinstance(v, tuple) else v for k, v in own.items()}}
