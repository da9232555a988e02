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


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say why tests skipped (the optional peers, PyTorch and JAX, when they are not installed)
    even without ``-rs``, one line per reason."""
    chars = config.getoption("reportchars", "") or ""
    if any(c in chars for c in "saA"):  # pytest lists them itself
        return
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("why tests skipped (pytest -rs names them)")
        for reason, count in sorted(reasons.items()):
            terminalreporter.write_line(f"{count} skipped: {reason}")
