"""Benchmarks: ``python -m bench.compare`` (side by side with the peers) and the
pytest-benchmark files ``bench/test_bench_*.py`` (``pytest bench/ --benchmark-only``)."""
