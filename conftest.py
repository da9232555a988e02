"""pytest configuration for the whole tree: modules whose optional dependencies are not
installed are not collected (``--doctest-modules`` would otherwise fail to import them)."""

from __future__ import annotations

import importlib.util


def _missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):  # a parent package missing, or blocked in sys.modules
        return True


collect_ignore: list[str] = []
if _missing("dask") or _missing("dask.array"):
    collect_ignore += ["fastce/dask.py", "fastce/_dask_worker.py"]
elif _missing("distributed"):
    collect_ignore += ["fastce/_dask_worker.py"]
