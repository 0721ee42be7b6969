"""Executors fan cells out to workers and hand their outcomes back to the driver, which scores and stores them.

* ``local`` (default): cells run one after another in this process.
* ``ray`` (extra ``[ray]``): cells run as Ray tasks on a local or remote Ray cluster
  (``ray_address``); outcomes are collected in the driver as they finish. A task that outlives its
  wall-clock guard (plus a grace period for start-up) is cancelled and recorded as failed (transiently), and a
  worker that dies (a method that calls ``os._exit``, a crash) fails only its cell. A local instance starts
  without its dashboard and with usage statistics off.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from ..errors import ConfigError, did_you_mean, require_extra
from .execute import Outcome

log = logging.getLogger(__name__)


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

    def map(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        for job in jobs:
            yield job.work(*job.args)

    def close(self) -> None:
        pass


class RayExecutor:
    """Computes cells as Ray tasks (one CPU each); ``address=None`` starts a local Ray instance."""

    name = "ray"
    startup_grace = 60.0

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        self.ray = require_extra("ray", "ray", "The Ray executor")
        self._started_here = not self.ray.is_initialized()
        if self._started_here:
            # nothing leaves the machine: no usage statistics (a user turns them on with RAY_USAGE_STATS_ENABLED=1)
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            self.ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                          log_to_driver=False, configure_logging=False)
        self._remote: dict[Callable, Any] = {}

    def _remote_of(self, work: Callable[..., Outcome]):
        if work not in self._remote:
            self._remote[work] = self.ray.remote(num_cpus=1, max_retries=0)(work)
        return self._remote[work]

    def map(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        """Keep one task per CPU in flight (so a task's clock starts when it can run), yield as they finish."""
        ray = self.ray
        queue = list(jobs)
        slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
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


EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}


def make_executor(name: str, *, ray_address: str | None = None, num_cpus: int | None = None):
    """An executor by name (``local`` or ``ray``)."""
    if name not in EXECUTORS:
        raise did_you_mean(name, list(EXECUTORS), "executor")
    if name == "local":
        if ray_address:
            raise ConfigError("--ray-address applies only to --executor ray.")
        return LocalExecutor()
    return RayExecutor(ray_address, num_cpus)
