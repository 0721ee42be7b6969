"""A lazy, typed registry of methods: decorators, entry points, and ``module:Class`` strings.

Built-in methods register themselves with :func:`register_method` when their module is imported;
plugins outside the package are found through the entry-point group ``trojanbench.methods`` (each entry
point names a method class) or given as ``"package.module:Class"``. Unknown names answer
"Unknown method 'tabr'. Did you mean: tabor? Available: ...".
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Iterable, TypeVar

from .errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from .methods.base import Method

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "trojanbench.methods"
BUILTIN_MODULES = ("trojanbench.methods.baselines", "trojanbench.methods.synthesis", "trojanbench.methods.attribution",
                   "trojanbench.methods.editing", "trojanbench.methods.replacement")

M = TypeVar("M", bound="type[Method]")
_METHODS: dict[str, type["Method"]] = {}
_loaded = False


def register_method(cls: M) -> M:
    """Class decorator: make a method available by its ``name``."""
    from .methods.base import Method

    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError(f"register_method expects a Method subclass. Got {cls!r}.")
    name = cls.name
    if not name or not isinstance(name, str):
        raise ConfigError(f"{cls.__qualname__} must set a non-empty class attribute 'name' to be registered.")
    existing = _METHODS.get(name)
    if existing is not None and existing is not cls:
        raise ConfigError(f"Method name {name!r} is already taken by {existing.__module__}.{existing.__qualname__}.")
    _METHODS[name] = cls
    return cls


def _load_all() -> None:
    """Import the built-in methods and the installed plugins (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register_method(entry.load())
        except Exception as exc:  # a broken plugin must not take the built-in methods down with it
            log.warning("Skipping plugin %r from entry point group %s: %s", entry.name, ENTRY_POINT_GROUP, exc)


def load_plugin(reference: str) -> type["Method"]:
    """Import ``"package.module:Class"`` and register the class it names."""
    module_name, sep, attr = reference.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"A plugin reference must look like 'package.module:Class'. Got {reference!r}.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"Cannot import plugin module {module_name!r} ({exc}). Is it installed or on "
                          f"PYTHONPATH?") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise ConfigError(f"Module {module_name!r} has no attribute {attr!r} (plugin {reference!r}).")
    return register_method(cls)


def load_plugins(references: Iterable[str]) -> tuple[str, ...]:
    """:func:`load_plugin` each reference; returns them as a tuple (recorded with a run)."""
    references = tuple(references)
    for reference in references:
        load_plugin(reference)
    return references


def get_method(name: str) -> type["Method"]:
    """The method class registered as ``name`` (or given as ``module:Class``)."""
    if ":" in name:
        return load_plugin(name)
    _load_all()
    if name not in _METHODS:
        raise did_you_mean(name, list(_METHODS), "method")
    return _METHODS[name]


def method_names(family: str | None = None) -> list[str]:
    """Registered method names, optionally of one family, sorted."""
    _load_all()
    return sorted(n for n, cls in _METHODS.items() if family is None or cls.family == family)


def make_method_of(name: str, params: dict | None, expected: type["Method"], what: str, *,
                   quick: bool = False) -> "Method":
    """Instantiate method ``name`` (registered or ``module:Class``), which must be a subclass of ``expected``
    (``what`` names that kind in messages, e.g. "a removal procedure"), with ``params`` over its defaults (over
    its ``quick_params`` when ``quick``), and validate them: bad input fails here, before any work."""
    cls = get_method(name)
    if not issubclass(cls, expected):
        choices = [n for n in method_names() if issubclass(_METHODS[n], expected)]
        raise ConfigError(f"Method {name!r} ({cls.family or 'no'} family) is not {what}. Choices: "
                          f"{', '.join(choices)}.")
    params = {**(cls.quick_params if quick else {}), **(params or {})}
    unknown = sorted(set(params) - set(cls._param_names()))
    if unknown:
        raise ConfigError(f"{cls.__name__} has no parameter(s) {unknown}. Valid parameters: {cls._param_names()}.")
    method = cls(**params)
    method.validate()
    return method
