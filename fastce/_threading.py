"""Entering Numba's parallel kernels safely from threads and from forked processes.

Numba runs ``parallel=True`` kernels on one of three threading layers, chosen once per process
when its thread pool starts (see Numba's "Selecting a threading layer"):

* ``tbb``: safe from several Python threads at once and in a forked child;
* ``omp`` (GNU OpenMP on Linux): safe from several threads; a child made with ``os.fork`` after
  the pool started is killed when it enters a parallel kernel ("fork() called from a process
  already using GNU OpenMP, this is unsafe"). Other OpenMP runtimes are fork-safe;
* ``workqueue``: fork-safe, but it aborts the process when two parallel kernels run at once
  (two Python threads, or a nested launch).

fastce makes every layer safe for its own calls, without changing a result:

* with a layer that is not thread-safe (``workqueue``), parallel launches take one process-wide
  lock: a single-threaded caller keeps every thread, concurrent callers take turns;
* in a child forked from a process whose pool had started on a layer that is not fork-safe, the
  kernels' serial twins run instead (``os.register_at_fork``);
* if the ``tbb`` wheel is installed (``pip install ".[tbb]"`` from a checkout) and
  ``NUMBA_THREADING_LAYER`` does not name another layer, its ``libtbb.so.12`` is loaded when
  fastce is imported, before Numba starts its pool: the wheel puts the library in
  ``<prefix>/lib``, off the loader's path, where Numba would not find it ("disabled due to
  unknown import problem"), so Numba would settle for OpenMP. With it loaded, Numba selects
  ``tbb``, safe for both.

The serial twin of a kernel is the same Python function compiled without ``parallel`` and takes
the same chunks in order, and the lock only orders whole calls, so results are the same bits on
every path (tests/test_concurrency.py asserts it).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any

# Layers that may be entered from several Python threads at once.
_THREAD_SAFE_LAYERS = frozenset({"tbb", "omp"})
# NUMBA_THREADING_LAYER values under which Numba may select tbb (a request by property, or
# for tbb itself): the preload only makes tbb loadable. A named "omp" or "workqueue" is the
# user's choice, left alone.
_TBB_ACCEPTING_REQUESTS = frozenset({"default", "tbb", "safe", "threadsafe", "forksafe"})
_TBB_LIBRARY = "libtbb.so.12"

_NO_LOCK: AbstractContextManager[Any] = nullcontext()
_launch_lock = threading.Lock()
# The layer Numba's pool runs on, once it has started (it never changes afterwards).
_layer: str | None = None
# True in a forked child whose parent's pool ran on a layer that is not fork-safe.
_serial_only = False
# Where the tbb library was loaded from, or why it was not.
_tbb_preload: str | None = None


def _numba_layer() -> str | None:
    """The layer of Numba's pool if it has started in this process (or before a fork), else
    None. Never starts the pool itself."""
    numba = sys.modules.get("numba")
    if numba is None:
        return None
    try:
        return str(numba.threading_layer())
    except ValueError:  # "Threading layer is not initialized."
        return None


def active_layer() -> str:
    """The threading layer fastce's parallel kernels run on, starting Numba's pool if needed.

    Starting the pool is what ``numba.get_num_threads()`` does first; Numba serialises it with
    its own lock, so the layer is known before any kernel is entered.
    """
    global _layer
    if _layer is None:
        import numba

        numba.get_num_threads()
        _layer = str(numba.threading_layer())
    return _layer


def fork_safe(layer: str) -> bool:
    """Whether a child forked after ``layer``'s pool started can run parallel kernels."""
    if layer in ("tbb", "workqueue"):
        return True
    if layer == "omp":
        pool = sys.modules.get("numba.np.ufunc.omppool")
        vendor = getattr(pool, "openmp_vendor", "GNU")
        return bool(vendor) and vendor != "GNU"
    return False  # a layer unknown to this module: assume the worst


def parallel_allowed() -> bool:
    """False in a forked child where the parent's threading layer makes parallel kernels
    unsafe; the caller then runs the kernel's serial twin (the same bits)."""
    return not _serial_only


def launch_guard() -> AbstractContextManager[Any]:
    """What a parallel launch runs under: the process-wide lock when the layer is not
    thread-safe (``workqueue``), else nothing."""
    layer = _layer if _layer is not None else active_layer()
    return _NO_LOCK if layer in _THREAD_SAFE_LAYERS else _launch_lock


def _after_fork_in_child() -> None:
    global _launch_lock, _serial_only, _layer
    # Another thread of the parent may have held the lock at the fork; no thread of the
    # child will ever release that copy.
    _launch_lock = threading.Lock()
    layer = _numba_layer()
    if layer is None:
        return  # the parent never started Numba's pool: the child starts its own
    _layer = layer
    if not fork_safe(layer):
        _serial_only = True


def _tbb_library_path() -> str | None:
    """``libtbb.so.12`` of the installed ``tbb`` wheel, or None."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("tbb")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name == _TBB_LIBRARY:
            path = os.path.normpath(str(dist.locate_file(file)))
            if os.path.exists(path):
                return path
    # A wheel installed without a RECORD: where pip puts its data files.
    path = os.path.join(sys.prefix, "lib", _TBB_LIBRARY)
    return path if os.path.exists(path) else None


def preload_tbb() -> str | None:
    """Load the ``tbb`` wheel's library so that Numba can select the ``tbb`` layer.

    Only when the wheel is installed, Numba's pool has not started yet, and
    ``NUMBA_THREADING_LAYER`` does not name ``omp`` or ``workqueue``. Returns the path loaded,
    or None. A library that fails to load is left alone: Numba then picks its next layer.
    """
    global _tbb_preload
    if sys.platform != "linux" or _numba_layer() is not None:
        return None
    requested = os.environ.get("NUMBA_THREADING_LAYER", "default").strip().lower() or "default"
    numba = sys.modules.get("numba")
    config = getattr(getattr(numba, "core", None), "config", None)
    if config is not None:
        requested = str(getattr(config, "THREADING_LAYER", requested)).lower()
    if requested not in _TBB_ACCEPTING_REQUESTS:
        return None
    path = _tbb_library_path()
    if path is None:
        return None
    try:
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    _tbb_preload = path
    return path


def status() -> dict[str, Any]:
    """How fastce enters parallel kernels in this process (for diagnostics and tests)."""
    layer = _layer if _layer is not None else _numba_layer()
    return {
        "layer": layer,
        "lock": layer is not None and layer not in _THREAD_SAFE_LAYERS,
        "serial_only": _serial_only,
        "tbb_preloaded": _tbb_preload,
    }


os.register_at_fork(after_in_child=_after_fork_in_child)
preload_tbb()
