"""Executors fan cells out to workers and hand their outcomes back to the driver, which scores and stores them.

Each executor says on which torch device its cells compute (``cell_device``: what the run's ``--device`` means
where the cells run) and a Ray executor asks one GPU per cell when they compute on CUDA.

* ``local`` (default): cells run one after another in this process.
* ``processes``: cells run in ``workers`` child processes of this machine (default: one per core it may use),
  each kept for many cells. A cell is isolated from the run as far as a process allows: a worker that outlives
  its cell's wall-clock guard (plus a grace period for start-up) is killed and replaced, and one that dies (a
  method that calls ``os._exit``, a crash) fails only its cell.
* ``ray`` (extra ``[ray]``): cells run as Ray tasks on a local or remote Ray cluster
  (``ray_address``); outcomes are collected in the driver as they finish. A task that outlives its
  wall-clock guard (plus :data:`STARTUP_GRACE` for start-up) is cancelled and recorded as failed (transiently),
  and a worker that dies (a method that calls ``os._exit``, a crash) fails only its cell. A local instance starts
  without its dashboard, with usage statistics off, and stays on the loopback (:func:`local_ray_environment`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from ..errors import ConfigError, did_you_mean, require_extra
from ..params import Interval, require
from .devices import check_device, resolve_device
from .execute import Outcome

log = logging.getLogger(__name__)


STARTUP_GRACE = 600.0
"""Seconds a worker may take beyond a cell's guard before it is stopped: its first cell also imports the package,
builds the audited model's Target and the judges, which takes minutes on a loaded machine."""


@dataclass(frozen=True)
class Job:
    """A cell to compute: ``work(*args)`` returns its :class:`Outcome` (``work``: a module-level function, so
    that a Ray worker can import it); ``timeout`` is the cell's wall-clock guard."""

    key: str
    work: Callable[..., Outcome]
    args: tuple[Any, ...]
    timeout: float


class LocalExecutor:
    """Computes cells in this process, one at a time."""

    name = "local"

    def __init__(self, device: str = "cpu"):
        self.cell_device = str(resolve_device(device))

    def map(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        for job in jobs:
            yield job.work(*job.args)

    def close(self) -> None:
        pass


def local_ray_environment() -> dict[str, str]:
    """The environment a local Ray instance's processes start with (and keep); the driver's own is restored once
    they run. Nothing they do leaves the loopback:

    * no usage statistics (a user who sets ``RAY_USAGE_STATS_ENABLED=1`` turns them back on);
    * a single-machine instance: Ray's processes listen on the loopback, not on the machine's network address
      (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when ray is imported);
    * Ray's API server asks cloud metadata servers (169.254.169.254, metadata.google.internal) which cloud it runs
      on even with usage statistics off (Ray 2.60), so its processes' HTTP clients go to a closed loopback port.
    """
    return {"RAY_USAGE_STATS_ENABLED": os.environ.get("RAY_USAGE_STATS_ENABLED", "0"),
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"),
            **{name: "http://127.0.0.1:9" for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")},
            **{name: "localhost,127.0.0.1,::1" for name in ("no_proxy", "NO_PROXY")}}


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block, then put back what was there."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class RayExecutor:
    """Computes cells as Ray tasks (one CPU each, and one GPU each when they compute on CUDA: ``device`` ``cuda``,
    or ``auto`` on a cluster with GPUs); ``address=None`` starts a local Ray instance."""

    name = "ray"
    startup_grace = STARTUP_GRACE

    def __init__(self, address: str | None = None, num_cpus: int | None = None, device: str = "cpu"):
        check_device(device)
        with _environment(local_ray_environment() if address is None else {}):
            self.ray = require_extra("ray", "ray", "The Ray executor")
            self._started_here = not self.ray.is_initialized()
            if self._started_here:
                constants = sys.modules.get("ray._private.ray_constants")
                if address is None and getattr(constants, "ENABLE_RAY_CLUSTER", False):
                    log.warning("Ray was imported before trojanbench started it, so it may listen on this machine's "
                                "network address: set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before importing ray "
                                "to keep it on the loopback.")
                self.ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                              log_to_driver=False, configure_logging=False)
        self._remote: dict[Callable, Any] = {}
        gpus = self.ray.cluster_resources().get("GPU", 0)
        if device.startswith("cuda") and not gpus:
            self.close()
            raise ConfigError(f"--device {device}: the Ray cluster has no GPU; use --device cpu, or auto to take "
                              f"GPUs only where the cluster has them.")
        self.gpus_per_cell = 1 if device.startswith("cuda") or device == "auto" and gpus else 0
        self.cell_device = "cuda" if self.gpus_per_cell else "cpu"  # Ray shows a task its own GPU as cuda:0

    def _remote_of(self, work: Callable[..., Outcome]):
        if work not in self._remote:
            self._remote[work] = self.ray.remote(num_cpus=1, num_gpus=self.gpus_per_cell, max_retries=0)(work)
        return self._remote[work]

    def map(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        """Keep one task per CPU in flight (so a task's clock starts when it can run), yield as they finish."""
        ray = self.ray
        queue = list(jobs)
        resources = ray.cluster_resources()
        slots = max(1, int(resources.get("CPU", 1)))
        if self.gpus_per_cell:
            slots = max(1, min(slots, int(resources.get("GPU", 0) // self.gpus_per_cell)))
        pending: dict[Any, tuple[Job, float]] = {}
        while queue or pending:
            while queue and len(pending) < slots:
                job = queue.pop(0)
                ref = self._remote_of(job.work).remote(*job.args)
                pending[ref] = (job, time.monotonic())
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                job, _ = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a crashed worker fails its cell only
                    yield Outcome(job.key, "failed", 0.0, reason=f"Ray task failed: {exc}"[:2000])
            now = time.monotonic()
            for ref, (job, submitted) in list(pending.items()):
                if now - submitted > job.timeout + self.startup_grace:
                    ray.cancel(ref, force=True)
                    pending.pop(ref)
                    yield Outcome(job.key, "failed", now - submitted,
                                      reason=f"CellTimeout: exceeded its wall-clock guard of {job.timeout:g} s (Ray)")

    def close(self) -> None:
        if self._started_here:
            self.ray.shutdown()


def _serve(connection) -> None:
    """A worker process: compute each ``(work, args)`` received, send back its :class:`Outcome`; stop on ``None``."""
    try:
        while (message := connection.recv()) is not None:
            work, args = message
            connection.send(work(*args))
    except (EOFError, KeyboardInterrupt):  # the driver went away, or the user stopped the run: the driver reports
        pass


@dataclass
class _Worker:
    process: Any
    connection: Any
    job: Job | None = None
    started: float = 0.0


class ProcessExecutor:
    """Computes cells in ``workers`` child processes (spawned: nothing of the driver's state is shared)."""

    name = "processes"
    startup_grace = STARTUP_GRACE

    def __init__(self, workers: int | None = None, device: str = "cpu"):
        from .threads import available_cores

        self.workers = workers or available_cores()
        self.cell_device = str(resolve_device(device))  # the workers share this machine's GPUs
        self._context = multiprocessing.get_context("spawn")
        self._running: list[_Worker] = []

    def _start(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(theirs,), daemon=True, name="trojanbench-worker")
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        self._running.append(worker)
        return worker

    def _stop(self, worker: _Worker) -> None:
        worker.process.kill()
        worker.process.join()
        worker.connection.close()
        self._running.remove(worker)

    def map(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        """Keep every worker busy, yield outcomes as they finish; replace a worker that hung or died."""
        from multiprocessing.connection import wait

        queue = list(jobs)
        idle = [self._start() for _ in range(min(self.workers, len(queue)))]
        busy: dict[Any, _Worker] = {}
        while queue or busy:
            while queue and idle:
                worker = idle.pop()
                worker.job, worker.started = queue.pop(0), time.monotonic()
                worker.connection.send((worker.job.work, worker.job.args))
                busy[worker.connection] = worker
            for connection in wait(list(busy), timeout=1.0):
                worker = busy.pop(connection)
                try:
                    yield connection.recv()
                    idle.append(worker)
                except (EOFError, OSError):
                    worker.process.join(5)
                    self._stop(worker)
                    yield Outcome(worker.job.key, "failed", time.monotonic() - worker.started,
                                  reason=f"WorkerDied: the worker process ended (exit code {worker.process.exitcode}) "
                                         f"while computing this cell; a method may not end its process")
                    idle.append(self._start())
            now = time.monotonic()
            for connection, worker in list(busy.items()):
                if now - worker.started > worker.job.timeout + self.startup_grace:
                    busy.pop(connection)
                    self._stop(worker)
                    yield Outcome(worker.job.key, "failed", now - worker.started,
                                  reason=f"CellTimeout: exceeded its wall-clock guard of {worker.job.timeout:g} s "
                                         f"(the worker process was stopped)")
                    idle.append(self._start())

    def close(self) -> None:
        for worker in list(self._running):
            try:
                worker.connection.send(None)
            except OSError:
                pass
            worker.process.join(5)
            self._stop(worker)


EXECUTORS = {"local": LocalExecutor, "processes": ProcessExecutor, "ray": RayExecutor}


def check_executor(name: str, *, ray_address: str | None = None, workers: int | None = None,
                   device: str = "cpu") -> None:
    """Refuse an unknown executor, options it does not take or an unknown device (before any work)."""
    if name not in EXECUTORS:
        raise did_you_mean(name, list(EXECUTORS), "executor")
    if ray_address and name != "ray":
        raise ConfigError("--ray-address applies only to --executor ray.")
    if workers is not None:
        require("--workers", workers, Interval(int, 1, None))
        if name == "local":
            raise ConfigError("--workers applies to --executor processes or ray (the local executor is this process).")
    if name == "ray":
        check_device(device)  # whether the cluster has the device is known once it is reached
    else:
        resolve_device(device)


def make_executor(name: str, *, ray_address: str | None = None, workers: int | None = None, device: str = "cpu"):
    """An executor by name (``local``, ``processes`` or ``ray``); ``workers``: the processes of ``processes``, or
    the CPUs of a local Ray instance; ``device``: the torch device the cells compute on (``auto``, ``cpu``,
    ``cuda``, ``cuda:N``; the executor's ``cell_device`` says what it means where they run)."""
    check_executor(name, ray_address=ray_address, workers=workers, device=device)
    if name == "local":
        return LocalExecutor(device)
    if name == "processes":
        return ProcessExecutor(workers, device)
    return RayExecutor(ray_address, workers, device)


@contextmanager
def running(name: str, *, ray_address: str | None = None, workers: int | None = None,
            device: str = "cpu") -> Iterator[Any]:
    """:func:`make_executor` for the block, closed at its end (a local Ray instance is stopped)."""
    executor = make_executor(name, ray_address=ray_address, workers=workers, device=device)
    try:
        yield executor
    finally:
        executor.close()
