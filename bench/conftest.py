"""pytest configuration for bench/: make ``tests.registry`` importable, and collect only the
pytest-benchmark files (the other scripts here are run directly, not imported by pytest)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# --doctest-modules (in the project's addopts) would import every module here; the standalone
# scripts (bench_*.py, vmath_asm.py, compare.py) are not for pytest.
collect_ignore = [
    p.name for p in HERE.glob("*.py") if not p.name.startswith(("test_", "conftest", "__init__"))
]
