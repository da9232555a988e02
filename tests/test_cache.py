"""Importing compiles nothing, and a second process loads every kernel from the disk cache."""

import json
import os
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import json, sys, time
    from numba.core import event
    compiled = []
    class Listener(event.Listener):
        def on_start(self, ev):
            compiled.append(str(ev.data["dispatcher"].py_func.__qualname__))
        def on_end(self, ev):
            pass
    event.register("numba:compile", Listener())
    start = time.perf_counter()
    import fastce
    import_seconds = time.perf_counter() - start
    after_import = list(compiled)
    if sys.argv[1] == "call":
        import numpy as np
        x = np.random.default_rng(0).normal(size=(50, 4))
        fastce.cross_entropy(np.zeros(50, int), x, from_logits=True, reduction="mean")
        p = fastce.softmax(x)
        fastce.entropy(p)
        # the kernels that _kernels/_driver writes from the families' tables, and a small call
        fastce.cross_entropy(p, x, from_logits=True)
        fastce.kl_divergence(p, p[::-1].copy(), reduction="mean")
        fastce.js_divergence(p, p)
        fastce.cross_entropy(np.zeros(50, int), p, reduction="sum")
    print(json.dumps({"after_import": after_import, "all": compiled,
                      "import_seconds": import_seconds}))
    """
)


def _probe(mode, cache_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_compiles_nothing(tmp_path):
    assert _probe("import", tmp_path)["after_import"] == []


def test_second_process_does_not_recompile(tmp_path):
    first = _probe("call", tmp_path)
    assert first["all"], "the first process should have compiled the kernels it used"
    second = _probe("call", tmp_path)
    assert second["all"] == [], f"recompiled in a second process: {second['all']}"


LSE_PROBE = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from numba.core import event
    compiled = []
    class Listener(event.Listener):
        def on_start(self, ev):
            compiled.append(str(ev.data["dispatcher"].py_func.__qualname__))
        def on_end(self, ev):
            pass
    event.register("numba:compile", Listener())
    import fastce
    assert fastce.__file__.startswith(sys.argv[1]), fastce.__file__
    fastce.logsumexp([[1.0, 2.0]])
    print(json.dumps(compiled))
    """
)


def test_editing_a_helper_module_recompiles_the_kernels_that_inline_it(tmp_path):
    """Numba stamps a cache with the defining file only; fastce stamps its kernels with all of
    their package's sources, so an edit to vmath/exactsum/_math is never served stale."""
    import shutil

    import fastce

    copy = tmp_path / "src"
    shutil.copytree(
        os.path.dirname(fastce.__file__),
        copy / "fastce",
        ignore=shutil.ignore_patterns("__pycache__"),
    )

    def run():
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        out = subprocess.run(
            [sys.executable, "-c", LSE_PROBE, str(copy)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert "logsumexp_rows" in run()
    assert run() == []
    helper = copy / "fastce" / "_kernels" / "_math.py"
    helper.write_text(helper.read_text() + "\n# an edit\n")
    assert "logsumexp_rows" in run()
