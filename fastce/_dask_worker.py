"""What :func:`fastce.dask.configure_workers` runs on ``distributed`` workers (imports
``distributed``; ``fastce.dask`` imports this module only when it is called)."""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
from distributed import WorkerPlugin
from distributed.comm import get_address_host


def warm_cache() -> float:
    """Compile, or load from Numba's cache, every kernel common calls and accumulators use."""
    from ._warmup import warmup
    from .accumulator import Accumulator

    seconds = warmup(out=io.StringIO())
    for dtype in (np.float64, np.float32):
        acc = Accumulator("entropy")
        acc.update(np.full((2, 2), 0.5, dtype))
        Accumulator.from_bytes(acc.to_bytes()).merge(acc).result()
    return seconds


def facts() -> dict[str, int]:
    """The CPUs this process may run on, and Numba's thread limit in it."""
    from .dask import _numba_thread_limit

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores": int(cores or 1), "numba_limit": _numba_thread_limit()}


def numba_threads_setting() -> int | None:
    """The Numba threads per task thread that fastce.dask blocks use in this process."""
    from . import dask as fastce_dask

    return fastce_dask._numba_threads


class NumbaThreads(WorkerPlugin):
    """Sets ``fastce.dask``'s Numba threads per task thread on every worker, including workers
    that join or are restarted after the plugin was registered."""

    name = "fastce-numba-threads"

    def __init__(self, per_host: dict[str, int], default: int | None) -> None:
        self.per_host = dict(per_host)
        self.default = default

    def setup(self, worker: Any) -> None:
        from . import dask as fastce_dask

        host = get_address_host(worker.address)
        fastce_dask._numba_threads = self.per_host.get(host, self.default)
