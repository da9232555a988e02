"""The table of measures: every public function is in it once, and what reads it agrees."""

from __future__ import annotations

import importlib
import importlib.util
import inspect

import numpy as np
import pytest

import fastce
from fastce import reference
from fastce._measures import MEASURES
from fastce.accumulator import MEASURES as ACCUMULATED

from .registry import REGISTRY

FUNCTIONS = {
    name
    for name in fastce.__all__
    if callable(getattr(fastce, name))
    and not inspect.isclass(getattr(fastce, name))
    # score_file reads files; compare reports several measures of two models at once (its
    # figures are the measures' own: tests/test_compare.py holds it to them)
    and name not in ("score_file", "compare")
}


def test_every_public_function_is_in_the_table_with_its_reference():
    assert set(MEASURES) == FUNCTIONS
    for name, m in MEASURES.items():
        assert m.function is getattr(fastce, name)
        assert m.reference is getattr(reference, name)
        # The reference takes the same arrays and options (less out=).
        ref = inspect.signature(m.reference).parameters
        assert [p for p in ref if p in m.arrays] == list(m.arrays), name
        takes_any = any(p.kind is p.VAR_KEYWORD for p in ref.values())
        assert takes_any or set(m.options) - {"out"} <= set(ref), name


def test_options_and_arrays_come_from_the_signatures():
    m = MEASURES["cross_entropy"]
    assert m.arrays == ("target", "pred") and m.labels_as_target
    assert m.options["label_smoothing"] == 0.0 and m.options["eps"] == "auto"
    assert MEASURES["entropy"].arrays == ("p",) and not MEASURES["kl_divergence"].labels_as_target


def test_accumulator_measures_are_the_rows_with_an_exact_sum():
    assert set(ACCUMULATED) == {n for n, m in MEASURES.items() if m.accumulates is not None}
    # perplexity keeps cross-entropy's sums, and the table says so
    assert "perplexity" in ACCUMULATED and MEASURES["perplexity"].accumulates_as in ACCUMULATED
    for name, m in ACCUMULATED.items():
        acc = fastce.Accumulator(name, **{key: [0, 1] for key in m.required})
        assert acc.measure == name


def test_every_measure_is_tested_and_the_kernels_it_names_exist():
    tested = {entry.name for entry in REGISTRY.values()}
    assert tested >= set(MEASURES) - {"perplexity", "log_loss"}  # those two: own test files
    for m in MEASURES.values():
        for module in m.kernels:
            importlib.import_module(f"fastce._kernels.{module}")


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_peers_exist_where_installed(name):
    for path in MEASURES[name].peers:
        module, _, attr = path.rpartition(".")
        top = module.split(".")[0]
        if importlib.util.find_spec(top) is None:
            continue
        assert hasattr(importlib.import_module(module), attr), path


def test_dask_functions_are_generated_from_the_table():
    pytest.importorskip("dask")
    import fastce.dask as fd

    for name, m in MEASURES.items():
        function = getattr(fd, name)
        public = inspect.signature(m.function).parameters
        in_memory_only = ("out",)
        assert list(inspect.signature(function).parameters) == [
            p for p in public if p not in in_memory_only
        ]
        doc = function.__doc__
        assert f":func:`fastce.{name}`" in doc and ".. math::" in doc and ">>> " in doc
    x = np.array([[0.25, 0.75], [0.5, 0.5]])
    assert fd.entropy(x, reduction="sum") == fastce.entropy(x, reduction="sum")
