"""Names a package exports but imports only when first used (PEP 562), so that the command line starts fast."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, list[str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each name of ``exports`` (submodule → names) on first
    use and keeps it in the package's namespace."""
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_of[name], package), name)
        setattr(importlib.import_module(package), name, value)  # later look-ups skip this function
        return value

    return __getattr__
