"""The Jinja environment of the HTML pages (the report and the pages beside it): the report's templates, each task's
own as ``"<task>/<file>"``, and the filters they share. Below both the report and the tasks, so either can use it."""

from __future__ import annotations

from pathlib import Path

from .engine.suite import MethodSpec

TEMPLATES = Path(__file__).resolve().parent / "report" / "templates"


def template_environment(task_folders: dict[str, Path]):
    """The pages' Jinja environment: :data:`TEMPLATES`, each task's folder under its name, and the filters."""
    import jinja2

    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(TEMPLATES), jinja2.PrefixLoader(
        {name: jinja2.FileSystemLoader(folder) for name, folder in task_folders.items()})])
    environment = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters["num"] = lambda v, d=3: "–" if v is None or v != v else f"{v:.{d}f}"
    environment.filters["method_label"] = lambda method: MethodSpec(method["name"], method.get("params", {})).label
    return environment
