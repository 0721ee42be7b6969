"""The thread policy of a run: how many threads torch may use in each worker.

Torch defaults to one intra-op thread per core; two such processes on a 2-core machine (a run beside a build, or
two Ray workers) oversubscribe the cores and each runs many times slower than with one thread. A run therefore
sets the threads itself: one per worker unless told otherwise (``--threads``), never more than the cores this
process may use; the run's provenance records it and the progress line shows it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from ..params import Interval, require


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_threads(threads: int | None) -> int:
    """The torch threads of each worker: ``threads`` if given (1 to the cores available), else 1."""
    if threads is None:
        return 1
    return require("--threads", threads, Interval(int, 1, available_cores()))


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Torch's intra-op threads set to ``threads`` in this block, restored after it."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
