"""Nothing a test run starts reaches beyond the loopback: the guard that checks it works (controls), and a local Ray
instance, the one component that used to (cloud metadata probes, listening on the machine's address), stays on it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest
import tb_netguard

from trojanbench.engine.execute import Outcome

CHILD = """
import socket
refused = []
for attempt in (lambda: socket.create_connection(("192.0.2.1", 9), timeout=5),
                lambda: socket.getaddrinfo("example.com", 80),
                lambda: socket.socket().bind(("0.0.0.0", 0))):
    try:
        attempt()
    except OSError as error:
        refused.append(str(error))
server = socket.create_server(("127.0.0.1", 0))
socket.create_connection(server.getsockname(), timeout=5).close()
socket.getaddrinfo("localhost", 80)
print(json.dumps(refused))
"""


def test_guard_refuses_and_records_each_socket_beyond_the_loopback(tmp_path):
    log = tmp_path / "guard.jsonl"
    env = {**os.environ, tb_netguard.LOG_VARIABLE: str(log)}  # the child's own log, not this session's
    child = subprocess.run([sys.executable, "-c", "import json\n" + CHILD], env=env, capture_output=True, text=True,
                           timeout=120, check=True)
    refused = json.loads(child.stdout)
    assert len(refused) == 3 and all("network guard" in reason for reason in refused)
    records, _ = tb_netguard.read(str(log))
    assert [(r["event"], r["target"]) for r in records] == [
        ("socket.connect", "192.0.2.1:9"), ("socket.getaddrinfo", "lookup of 'example.com'"),
        ("socket.bind", "0.0.0.0:0")]  # the loopback server, connection and lookup are not there
    assert {r["pid"] for r in records} != {os.getpid()} and "<string>" in records[0]["stack"]


def test_socket_scan_finds_a_child_listening_on_every_interface():
    env = {name: value for name, value in os.environ.items() if name != tb_netguard.LOG_VARIABLE}  # unguarded
    listen = ("import socket, sys\nserver = socket.create_server(('0.0.0.0', 0))\n"
              "print(server.getsockname()[1], flush=True)\nsys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", listen], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        port = child.stdout.readline().strip()
        found = tb_netguard.beyond_loopback(tb_netguard.inet_sockets(tb_netguard.descendants(os.getpid())))
        assert [(pid, local) for pid, _, local, _ in found] == [(child.pid, f"0.0.0.0:{port}")]
    finally:
        child.communicate("")


def _dashboard_done(logs: str) -> bool:
    """Whether Ray's API server has run its usage-statistics module (where the cloud metadata probes were)."""
    try:
        names = [name for name in os.listdir(logs) if name.startswith("dashboard") and name.endswith(".log")]
        return any("Usage reporting is disabled" in open(os.path.join(logs, name), errors="replace").read()
                   for name in names)
    except OSError:
        return False


def test_local_ray_instance_stays_on_the_loopback():
    if importlib.util.find_spec("ray") is None:  # not importorskip: the executor must be the first to import ray
        pytest.skip("needs the [ray] extra")
    from trojanbench.engine.executors import Job, RayExecutor

    def work(key):
        return Outcome(key, "ok", 0.0, value=os.getpid())

    executor = RayExecutor(num_cpus=1)
    try:
        [outcome] = list(executor.map([Job("cell", work, ("cell",), timeout=600)]))
        assert outcome.ok and outcome.value != os.getpid()
        logs = executor.ray._private.worker.global_worker.node.get_logs_dir_path()
        deadline = time.monotonic() + 600  # a hang guard, generous for a loaded machine
        while not _dashboard_done(logs) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _dashboard_done(logs), "Ray's API server never ran its usage-statistics module"
        processes = tb_netguard.descendants(os.getpid())
        sockets = tb_netguard.inet_sockets(processes)
        names = {open(f"/proc/{pid}/comm").read().strip() for pid, *_ in sockets}
        assert {"gcs_server", "raylet"} <= names  # the scan sees Ray's binaries, which the audit hook cannot
        assert tb_netguard.beyond_loopback(sockets) == []
        records, _ = tb_netguard.read(os.environ[tb_netguard.LOG_VARIABLE])
        assert [r for r in records if r["pid"] in processes] == []
    finally:
        executor.close()
