"""A tiny zoo built once per test session (the `zoo build --tiny` path, under a minute), and a served survey study
over a module's ``results`` folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from trojanbench.zoo import build_zoo

from survey_results import ADMIN, GENEROUS


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def fixtures_on_path(monkeypatch):
    """The test plugins (``tests/fixtures``) importable here and in worker processes."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FIXTURES), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-zoo")
    return build_zoo(out, profile="tiny")


@pytest.fixture
def served(results, tmp_path):
    """A fresh study of a copy of the module's ``results``, served on a free local port with limits no test reaches:
    (base URL, study, folder)."""
    from trojanbench.survey.app import create_app, serving
    from trojanbench.survey.study import Study

    folder = shutil.copytree(results, tmp_path / "run")
    study = Study.open(folder, seed=3)
    with serving(create_app(study, ADMIN, limits=GENEROUS)) as url:
        yield url, study, folder
    study.close()
