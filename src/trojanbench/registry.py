"""One lazy, typed registry for methods, judges and tasks: decorators, entry points, ``module:attr`` strings.

Built-in entries register themselves when their module is imported (each registry names the modules that hold
them and imports those on first use); outside packages add entries through an entry-point group
(``trojanbench.methods``, ``trojanbench.judges``, ``trojanbench.tasks``: each entry point names a class or object)
or are given as ``"package.module:attr"``. Unknown names answer "Unknown method 'tabr'. Did you mean: tabor?
Available: ..."; a second entry under a taken name is an error naming the first one.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Callable, Generic, Iterable, TypeVar

from .errors import ConfigError, did_you_mean

if TYPE_CHECKING:  # for annotations only
    from .engine.task import Task
    from .judges.base import Judge
    from .methods.base import Method

log = logging.getLogger(__name__)

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one kind by name. ``check(entry)`` rejects what is not of the kind (a :class:`ConfigError`)."""

    def __init__(self, kind: str, group: str, builtin_modules: tuple[str, ...], check: Callable[[Any], None]):
        self.kind, self.group, self.builtin_modules, self._check = kind, group, builtin_modules, check
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, entry: T) -> T:
        """Decorator (or call): make ``entry`` available by its ``name`` attribute."""
        self._check(entry)
        name = getattr(entry, "name", None)
        if not name or not isinstance(name, str):
            raise ConfigError(f"A {self.kind} must set a non-empty attribute 'name' to be registered. Got {entry!r}.")
        existing = self._entries.get(name)
        if existing is not None and existing is not entry:
            raise ConfigError(f"{self.kind.capitalize()} name {name!r} is already taken by {_where(existing)}.")
        self._entries[name] = entry
        return entry

    def _load_all(self) -> None:
        """Import the built-in entries and the installed plugins (once)."""
        if self._loaded:
            return
        self._loaded = True
        for module in self.builtin_modules:
            importlib.import_module(module)
        for entry in entry_points(group=self.group):
            try:
                self.register(entry.load())
            except Exception as exc:  # a broken plugin must not take the built-in entries down with it
                log.warning("Skipping plugin %r from entry point group %s: %s", entry.name, self.group, exc)

    def load(self, reference: str) -> T:
        """Import ``"package.module:attr"`` and register what it names."""
        return self.register(resolve_reference(reference))

    def get(self, name: str) -> T:
        """The entry registered as ``name`` (or given as ``module:attr``)."""
        if ":" in name:
            return self.load(name)
        self._load_all()
        if name not in self._entries:
            raise did_you_mean(name, list(self._entries), self.kind)
        return self._entries[name]

    def names(self) -> list[str]:
        self._load_all()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs, sorted by name."""
        return [(name, self._entries[name]) for name in self.names()]


def _where(entry: Any) -> str:
    cls = entry if isinstance(entry, type) else type(entry)
    return f"{cls.__module__}.{cls.__qualname__}"


def _named(path: str) -> Any:
    """The object at a dotted ``module.name`` path (the registry names the bases it checks against, so that it
    imports none of the packages whose entries it holds)."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


METHOD_BASE, JUDGE_BASE, TASK_BASE = ("trojanbench.methods.base.Method", "trojanbench.judges.base.Judge",
                                      "trojanbench.engine.task.Task")


def _subclass_check(base_path: str, what: str) -> Callable[[Any], None]:
    def check(entry: Any) -> None:
        base = _named(base_path)
        if not (isinstance(entry, type) and issubclass(entry, base)):
            raise ConfigError(f"A {what} must be a subclass of {base.__name__}. Got {entry!r}.")
    return check


def _task_check(entry: Any) -> None:
    if not isinstance(entry, _named(TASK_BASE)):
        raise ConfigError(f"A task must be an instance of trojanbench.engine.Task (a subclass of it, "
                          f"instantiated). Got {entry!r}.")


METHODS: Registry[type["Method"]] = Registry(
    "method", "trojanbench.methods",
    ("trojanbench.methods.baselines", "trojanbench.methods.synthesis", "trojanbench.methods.attribution",
     "trojanbench.methods.editing", "trojanbench.methods.replacement", "trojanbench.methods.inversion"),
    _subclass_check(METHOD_BASE, "method"))
JUDGES: Registry[type["Judge"]] = Registry(
    "judge", "trojanbench.judges", ("trojanbench.judges.concept", "trojanbench.judges.appearance",
                                    "trojanbench.judges.robust", "trojanbench.judges.clip"),
    _subclass_check(JUDGE_BASE, "judge"))
TASKS: Registry["Task"] = Registry(
    "task", "trojanbench.tasks",
    ("trojanbench.tasks.rediscovery", "trojanbench.tasks.localization", "trojanbench.tasks.removal",
     "trojanbench.tasks.editing", "trojanbench.tasks.replacement", "trojanbench.tasks.lm_rediscovery",
     "trojanbench.tasks.lm_removal"),
    _task_check)

register_method = METHODS.register
register_judge = JUDGES.register
register_task = TASKS.register
get_method = METHODS.get
get_task = TASKS.get


def load_plugins(references: Iterable[str]) -> tuple[str, ...]:
    """Load each ``module:attr`` reference into the registry of its kind (a method class, a judge class or a task);
    returns them as a tuple (recorded with a run)."""
    references = tuple(references)
    for reference in references:
        load_any(reference)
    return references


def load_any(reference: str) -> Any:
    """Register ``module:attr`` in the registry its object belongs to: a task, a judge class or a method class."""
    entry = resolve_reference(reference)
    if isinstance(entry, _named(TASK_BASE)):
        return TASKS.register(entry)
    if isinstance(entry, type) and issubclass(entry, _named(JUDGE_BASE)):
        return JUDGES.register(entry)
    return METHODS.register(entry)


def resolve_reference(reference: str) -> Any:
    """The object ``module:attr`` names (imported; a bad reference or a missing module is a ConfigError)."""
    module_name, sep, attr = reference.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"A plugin reference must look like 'package.module:Name'. Got {reference!r}.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"Cannot import plugin module {module_name!r} ({exc}). Is it installed or on "
                          f"PYTHONPATH?") from None
    entry = getattr(module, attr, None)
    if entry is None:
        raise ConfigError(f"Module {module_name!r} has no attribute {attr!r} (plugin {reference!r}).")
    return entry


def method_names(family: str | None = None) -> list[str]:
    """Registered method names, optionally of one family, sorted."""
    return [n for n, cls in METHODS.items() if family is None or cls.family == family]


def make_method_of(name: str, params: dict | None, expected: type["Method"], what: str, *,
                   quick: bool = False) -> "Method":
    """Instantiate method ``name`` (registered or ``module:Class``), which must be a subclass of ``expected``
    (``what`` names that kind in messages, e.g. "a removal procedure"), with ``params`` over its defaults (over
    its ``quick_params`` when ``quick``), and validate them: bad input fails here, before any work."""
    choices = [n for n, c in METHODS.items() if issubclass(c, expected)]
    if ":" not in name and name not in METHODS.names():  # name only the choices that fit, not every method
        raise did_you_mean(name, choices, what.split(" ", 1)[1])
    cls = get_method(name)
    if not issubclass(cls, expected):
        raise ConfigError(f"Method {name!r} ({cls.family or 'no'} family) is not {what}. Choices: "
                          f"{', '.join(choices)}.")
    params = {**(cls.quick_params if quick else {}), **(params or {})}
    unknown = sorted(set(params) - set(cls._param_names()))
    if unknown:
        raise ConfigError(f"{cls.__name__} has no parameter(s) {unknown}. Valid parameters: {cls._param_names()}.")
    method = cls(**params)
    method.validate()
    return method
