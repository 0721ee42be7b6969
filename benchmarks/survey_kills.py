"""Durability of the survey under SIGKILL, measured: scripted participants take a study served by a real
``trojanbench survey serve`` process on localhost, the process is killed with SIGKILL several times mid-study and
started again, and at the end every acknowledged answer is looked up in the admin export. A measurement, not a
test (``tests/integration/test_survey_crash.py`` asserts the same on one kill); the study is served from a copy of
the results folder, which is left untouched.

    python benchmarks/survey_kills.py RESULTS_DIR --participants 30 --kills 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

from trojanbench.survey.simulate import simulate

ADMIN = "admin-token-of-the-kill-benchmark"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(folder: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-c", "from trojanbench.cli import main; main()", "-q", "survey", "serve", str(folder),
               "--port", str(port), "--admin-token", ADMIN]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read() == b"ok":
                return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit("the server exited at start")
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("--participants", type=int, default=30)
    parser.add_argument("--kills", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "study"
        shutil.copytree(args.results_dir, folder, ignore=shutil.ignore_patterns("survey*.sqlite*"))
        port = _free_port()
        acknowledged: list = []
        outcome: dict = {}
        server = _serve(folder, port)
        started = time.perf_counter()
        thread = threading.Thread(target=lambda: outcome.setdefault("report", simulate(
            f"http://127.0.0.1:{port}", folder, args.participants, seed=5, retry_seconds=120, think_seconds=0.05,
            on_answer=acknowledged.append)))
        thread.start()
        killed_at = []
        for _ in range(args.kills):
            target = len(acknowledged) + max(10, args.participants)
            while len(acknowledged) < target and thread.is_alive():
                time.sleep(0.05)
            os.kill(server.pid, signal.SIGKILL)
            server.wait(30)
            killed_at.append(len(acknowledged))
            server = _serve(folder, port)
        thread.join()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/admin/export.json",
                                         headers={"Authorization": f"Bearer {ADMIN}"})
        document = json.loads(urllib.request.urlopen(request, timeout=60).read())
        server.kill()
        server.wait(30)
    report = outcome["report"]
    exported = Counter((a["PROLIFIC_PID"], a["position"], a["choice"]) for a in document["answers"])
    answered = [(a.label, a.position, a.choice) for a in report.answers]
    print(f"{args.participants} participants, {len(killed_at)} SIGKILLs after {killed_at} acknowledged answers, "
          f"{time.perf_counter() - started:.1f} s")
    lost = sum(a not in exported for a in answered)
    print(f"acknowledged {len(answered)}, in the export {len(exported)}, lost {lost}, "
          f"duplicated {sum(n > 1 for n in exported.values())}; completed {report.completed}, failed "
          f"{len(report.failures)}, retried requests {report.retries}")


if __name__ == "__main__":
    main()
