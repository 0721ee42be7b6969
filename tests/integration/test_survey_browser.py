"""A person's whole visit in headless Chromium (Debian's ``chromium``), from the consent page to the completion
code, then the admin's sign-in and live summary. Set TROJANBENCH_SHOTS to a folder to keep the screenshots."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from trojanbench.survey.app import create_app, serving
from trojanbench.survey.study import Study

from browser import Browser, chromium_path
from survey_results import write_results

pytestmark = pytest.mark.slow
ADMIN = "admin-token-for-the-browser-test"


def _keep(check, name: str) -> None:
    folder = os.environ.get("TROJANBENCH_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"survey_{name}.png").write_bytes(check.screenshot)


def _clean(check) -> None:
    assert check.broken_images == [] and check.console_errors == []


def test_a_participant_goes_from_consent_to_completion_code_in_chromium(tmp_path):
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium (.ci/run installs it with apt-get)")
        pytest.skip("needs Debian's chromium (installed by .ci/run)")
    folder = write_results(tmp_path / "run")
    study = Study.open(folder, seed=2)
    with serving(create_app(study, ADMIN)) as url, Browser(width=1000, height=900) as browser:
        consent = browser.open_page(f"{url}/?PROLIFIC_PID=browser1&STUDY_ID=study1&SESSION_ID=session1")
        _clean(consent)
        assert "I agree to take part" in browser.evaluate("document.body.innerText")
        _keep(consent, "consent")
        instructions = browser.click_and_wait('button[value="yes"]')
        _clean(instructions)
        assert browser.evaluate("location.pathname") == "/instructions"
        page = browser.click_and_wait("a.button")
        kept = set()
        while browser.evaluate("location.pathname") == "/item":
            _clean(page)
            assert page.image_count == 9, "the tool's images and 8 options"
            position = int(browser.evaluate("document.querySelector('form').action.split('/').pop()"))
            kind = study.items[study.store.assignments()[position].item_id].kind
            assert browser.evaluate("document.querySelector('form').checkValidity()") is False, "a choice is required"
            browser.evaluate(f"document.querySelector('input[name=choice][value=\"{position % 8}\"]').click()")
            if kind not in kept:  # shown with the choice made, as the participant sees it before pressing Next
                _keep(browser.inspect(), "item" if kind == "cell" else "attention")
                kept.add(kind)
            page = browser.click_and_wait('button[type="submit"]')
        assert browser.evaluate("location.pathname") == "/done"
        _clean(page)
        _keep(page, "done")
        (participant,) = study.store.participants()
        assert browser.evaluate("document.querySelector('.code').innerText").strip() == participant.completion_code
        assert participant.platform == {"PROLIFIC_PID": "browser1", "SESSION_ID": "session1", "STUDY_ID": "study1"}
        answers = study.store.answers()
        assert [a["position"] for a in answers] == list(range(participant.n_items))
        assert [a["choice"] for a in answers] == [p % 8 for p in range(participant.n_items)]
        assert kept == {"cell", "attention"}

        browser.call("Network.clearBrowserCookies")  # the participant's cookie would be refused there
        login = browser.open_page(f"{url}/admin")
        assert login.broken_images == [] and login.console_errors == [
            "Failed to load resource: the server responded with a status of 401 (Unauthorized)"]  # the sign-in form
        browser.evaluate(f"document.querySelector('input[name=token]').value = {json.dumps(ADMIN)}")
        summary = browser.click_and_wait('button[type="submit"]')
        _clean(summary)
        assert "participants started" in browser.evaluate("document.body.innerText")
        assert ADMIN not in browser.evaluate("document.documentElement.outerHTML")
        _keep(summary, "admin")
    study.close()
    shutil.rmtree(folder)
