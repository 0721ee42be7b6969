"""Durability: the server process is killed with SIGKILL in the middle of a study and started again; every
answer it acknowledged is still there, and the participants carry on to their completion codes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from trojanbench.survey.simulate import simulate

from survey_results import write_results

pytestmark = pytest.mark.slow
ADMIN = "admin-token-for-the-crash-test"
SERVE = "from trojanbench.cli import main; main()"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(folder, port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", SERVE, "-q", "survey", "serve", str(folder), "--port", str(port),
                                "--admin-token", ADMIN], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600  # a hang guard: a loaded machine is only slower
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read() == b"ok":
                return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not answer within 120 s")


def test_no_acknowledged_answer_is_lost_when_the_server_is_killed_mid_study(tmp_path):
    folder = write_results(tmp_path / "run", seeds=(0, 1))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    acknowledged = []
    enough = threading.Event()

    def on_answer(answer):
        acknowledged.append(answer)
        if len(acknowledged) >= 20:
            enough.set()

    server = _start(folder, port)
    outcome = {}
    participants = threading.Thread(target=lambda: outcome.setdefault("report", simulate(
        url, folder, 8, seed=3, retry_seconds=120, think_seconds=0.05, on_answer=on_answer)))
    try:
        participants.start()
        assert enough.wait(120), "the simulated participants did not get going"
        os.kill(server.pid, signal.SIGKILL)
        server.wait(30)
        killed_after = len(acknowledged)
        server = _start(folder, port)
        participants.join(300)
        assert not participants.is_alive()
        request = urllib.request.Request(f"{url}/admin/export.json", headers={"Authorization": f"Bearer {ADMIN}"})
        document = json.loads(urllib.request.urlopen(request, timeout=30).read())
    finally:
        server.kill()
        server.wait(30)
    report = outcome["report"]
    assert report.failures == [] and report.completed == 8
    assert killed_after < len(report.answers), "the kill came in the middle of the study"
    assert report.retries > 0, "requests were refused while the server was down"
    exported = {(a["PROLIFIC_PID"], a["position"], a["choice"]) for a in document["answers"]}
    assert {(a.label, a.position, a.choice) for a in report.answers} <= exported
    completed = [p for p in document["participants"] if p["completed"]]
    assert {p["platform"]["PROLIFIC_PID"] for p in completed} == {f"sim-{i}" for i in range(8)}
