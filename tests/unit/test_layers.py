"""The package's layering: no import cycle between its top-level parts, and the engine knows no task and no report.

Every ``import`` statement counts, at module level or inside a function (a lazy import is still a dependency),
except those under ``if TYPE_CHECKING:`` (annotations only, never run); the registry's lookups of built-in
modules by name are not imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import trojanbench

PACKAGE = Path(trojanbench.__file__).resolve().parent


def _part(module: str) -> str | None:
    """The top-level part of ``trojanbench.<part>...`` (``None`` outside the package)."""
    names = module.split(".")
    return names[1] if names[0] == "trojanbench" and len(names) > 1 else None


def _imports(path: Path) -> set[str]:
    """The absolute names of the modules ``path`` imports."""
    module = ".".join(("trojanbench", *path.relative_to(PACKAGE).with_suffix("").parts))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    package = package.removesuffix(".__init__")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # drop the annotation-only imports
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{alias.name}" for alias in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    """``{part: parts it imports}`` over every ``.py`` file of the package."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        part = relative.parts[0].removesuffix(".py") if len(relative.parts) == 1 else relative.parts[0]
        if part == "__init__":  # the package root re-exports everything: the public API, above every part
            continue
        targets = {_part(name) for name in _imports(path)} - {None, part, "__init__"}
        graph.setdefault(part, set()).update(t for t in targets if (PACKAGE / t).is_dir()
                                             or (PACKAGE / f"{t}.py").is_file())
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_top_level_parts():
    graph = _graph()
    assert {"engine", "tasks", "report", "registry", "cli"} <= set(graph)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_engine_imports_no_task_and_no_report():
    assert not graph_of("engine") & {"tasks", "report", "survey", "cli", "api"}, graph_of("engine")


def test_the_registry_imports_none_of_the_parts_it_holds():
    assert not graph_of("registry") & {"methods", "judges", "tasks", "engine"}, graph_of("registry")


def test_the_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def graph_of(part: str) -> set[str]:
    return _graph().get(part, set())
