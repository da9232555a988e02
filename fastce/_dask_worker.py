"""What :func:`fastce.dask.configure_workers` runs on ``distributed`` workers (imports
``distributed``; ``fastce.dask`` imports this module only when it is called)."""

from __future__ import annotations

import io
import logging
import os
import re
from typing import Any

import numpy as np
from distributed import WorkerPlugin
from distributed.comm import get_address_host


def warm_cache() -> float:
    """Compile, or load from Numba's cache, every kernel common calls, accumulators and
    ``fastce.dask.compare`` use."""
    from ._warmup import warmup
    from .accumulator import Accumulator
    from .comparison import compare
    from .losses import softmax

    seconds = warmup(out=io.StringIO())
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        acc = Accumulator("entropy")
        acc.update(np.full((2, 2), 0.5, dtype))
        Accumulator.from_bytes(acc.to_bytes()).merge(acc).result()
        # compare's kernels (logits, probabilities; with and without a target), on a small
        # input (the calling thread) and a large one (the thread pool)
        for rows in (4, 2048):
            x = rng.normal(size=(rows, 16)).astype(dtype)
            y = rng.integers(0, 16, rows)
            for logits, pred in ((True, x), (False, softmax(x))):
                for target in (None, y):
                    compare(pred, pred[::-1].copy(), target, from_logits=logits)
    return seconds


def facts() -> dict[str, int]:
    """The CPUs this process may run on, and Numba's thread limit in it."""
    from ._dask_blocks import _numba_thread_limit

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores": int(cores or 1), "numba_limit": _numba_thread_limit()}


def numba_threads_setting() -> int | None:
    """The Numba threads per task thread that fastce.dask blocks use in this process."""
    from . import _dask_blocks

    return _dask_blocks._numba_threads


class NumbaThreads(WorkerPlugin):
    """Sets ``fastce.dask``'s Numba threads per task thread on every worker, including workers
    that join or are restarted after the plugin was registered."""

    name = "fastce-numba-threads"

    def __init__(self, per_host: dict[str, int], default: int | None) -> None:
        self.per_host = dict(per_host)
        self.default = default

    def setup(self, worker: Any) -> None:
        from . import _dask_blocks

        host = get_address_host(worker.address)
        _dask_blocks._numba_threads = self.per_host.get(host, self.default)
        quiet_input_errors()


# -- The worker's log ------------------------------------------------------------------------

# What fastce.dask appends to the message of a block's input error (fastce's own ValueError or
# TypeError, restated with its position in the whole array), as repr() writes it.
_INPUT_ERROR = re.compile(
    r"^(ValueError|TypeError|InvalidParameterError)\(.*\(fastce\.dask: \w+ in [^()]*"
)


class InputErrorsInOneLine(logging.Filter):
    """Shortens the worker's "Compute Failed" record of a fastce.dask block that refused its
    input to one line.

    The client raises that error with the same message, and its worker traceback (Dask's task
    wrapper and fastce's block function) says nothing about the data; the record kept the full
    key, task and traceback over several lines before the clean error. Other failures (a bug,
    a worker fault) keep their full record, and so does every record while the logger is
    enabled for DEBUG (``logging.getLogger("distributed.worker").setLevel("DEBUG")``, or
    Dask's ``logging: {distributed.worker: debug}`` configuration).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            record.msg.__class__ is not str
            or not record.msg.startswith("Compute Failed")
            or not isinstance(args, tuple)
            or len(args) != 5
        ):
            return True
        key, _, _, exception_text, _ = args
        if "fastce-" not in str(key) or not _INPUT_ERROR.match(str(exception_text)):
            return True
        if logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return True
        record.msg = "Compute Failed: %s (task %s; raised on the client)"
        record.args = (" ".join(str(exception_text).split()), key)
        return True


_ONE_LINE = InputErrorsInOneLine()


def quiet_input_errors() -> None:
    """Install :class:`InputErrorsInOneLine` on this process's ``distributed.worker`` logger
    (once; a worker's set-up and the first failing block both call it)."""
    logger = logging.getLogger("distributed.worker")
    if _ONE_LINE not in logger.filters:
        logger.addFilter(_ONE_LINE)
