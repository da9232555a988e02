"""Every documented line works as written.

Each fenced ``python`` block of README.md and docs/*.md runs in order, one namespace per page,
after the page's earlier blocks, as a reader pastes them into one session. Each ``bash``,
``sh`` and ``console`` block runs in bash (a console block's ``$`` lines are its commands), with
this interpreter's ``bin`` directory first on PATH (where the ``fastce`` command is installed)
and the repository root on PYTHONPATH. A page's blocks share one temporary working directory,
so a shell block reads the files that the page's earlier Python blocks wrote.

An HTML comment on the line just above a fence changes that:

* ``<!-- not-run: reason -->``: the block is not run (it needs a cluster, or installs packages
  into a fresh virtual environment);
* ``<!-- slow: reason -->``: the block runs only under ``pytest -m slow``. Later blocks must not
  need what a slow block defines or writes.

Fences of other languages (``text``, none) are output or prose and are not run.

The page's other promises checked here: the signature table of docs/api.md and the README's
sentence about which function takes which option, and the README's list of what the ``test``
extra installs.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import fastce

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGUAGES = {"python", "bash", "sh", "console"}
MARK = re.compile(r"^<!--\s*(not-run|slow):\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^```\s*([\w+-]*)")
SHELL_TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    page: str  # path relative to the repository root
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    mark: str | None  # "not-run", "slow" or None
    reason: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}:{self.language}"


def parse(path: Path) -> list[Block]:
    """The fenced blocks of one page, with the mark on the line above each."""
    page = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            mark = MARK.match(lines[i])
            if mark and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
                raise ValueError(f"{page}:{i + 1}: a mark must be on the line just above a fence")
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            i += 1
        if i == len(lines):
            raise ValueError(f"{page}:{start + 1}: the fence is never closed")
        code = "\n".join(lines[start + 1 : i]) + "\n"
        above = MARK.match(lines[start - 1]) if start > 0 else None
        mark, reason = (above.group(1), above.group(2)) if above else (None, "")
        blocks.append(Block(page, start + 1, fence.group(1).lower(), code, mark, reason))
        i += 1
    return blocks


BLOCKS = [block for path in PAGES for block in parse(path)]
RUN = [block for block in BLOCKS if block.language in RUN_LANGUAGES]


def _params() -> list[Any]:
    return [
        pytest.param(block, id=block.id, marks=[pytest.mark.slow] if block.mark == "slow" else [])
        for block in RUN
        if block.mark != "not-run"
    ]


@dataclass
class PageSession:
    """One page's reader: a namespace, a working directory and the blocks run so far."""

    workdir: Path
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__main__"})
    done: set[int] = field(default_factory=set)
    failed: Block | None = None


_SESSIONS: dict[str, PageSession] = {}


@pytest.fixture(scope="session")
def sessions(tmp_path_factory):
    def get(page: str) -> PageSession:
        if page not in _SESSIONS:
            name = re.sub(r"\W", "_", page)
            _SESSIONS[page] = PageSession(tmp_path_factory.mktemp(name))
        return _SESSIONS[page]

    yield get
    _SESSIONS.clear()


def _shell_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def console_commands(code: str) -> list[str]:
    """The commands of a console transcript: ``$ `` lines and their ``\\`` continuations."""
    commands: list[str] = []
    continued = False
    for line in code.splitlines():
        if continued:
            commands[-1] += "\n" + line
        elif line.startswith("$ "):
            commands.append(line[2:])
        else:
            continue
        continued = line.rstrip().endswith("\\")
    return commands


def _run_shell(block: Block, workdir: Path) -> None:
    commands = console_commands(block.code) if block.language == "console" else [block.code]
    assert commands, f"{block.id}: a console block without a `$ ` command"
    for command in commands:
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", command],
            cwd=workdir,
            env=_shell_env(),
            capture_output=True,
            text=True,
            timeout=SHELL_TIMEOUT_S,
        )
        assert done.returncode == 0, (
            f"{block.id}: `{command}` exited with {done.returncode}\n"
            f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
        )


def _run(block: Block, session: PageSession) -> None:
    if block.language == "python":
        # Padding makes a traceback's line numbers the page's.
        code = compile("\n" * block.line + block.code, block.page, "exec")
        exec(code, session.namespace)
    else:
        _run_shell(block, session.workdir)


@pytest.mark.parametrize("block", _params())
def test_block_runs_as_written(block: Block, sessions, monkeypatch):
    session = sessions(block.page)
    monkeypatch.chdir(session.workdir)
    index = RUN.index(block)
    # The page's earlier blocks first (those not run yet: this one may be run alone, or under
    # -m slow, which deselects the others); slow blocks are never prerequisites.
    for earlier_index, earlier in enumerate(RUN[:index]):
        if earlier.page != block.page or earlier.mark is not None:
            continue
        if session.failed is not None:
            pytest.fail(f"an earlier block of the page failed: {session.failed.id}")
        if earlier_index not in session.done:
            try:
                _run(earlier, session)
            except BaseException:
                session.failed = earlier
                raise
            session.done.add(earlier_index)
    if session.failed is not None:
        pytest.fail(f"an earlier block of the page failed: {session.failed.id}")
    try:
        _run(block, session)
    except BaseException:
        if block.mark is None:
            session.failed = block
        raise
    session.done.add(index)


def test_every_block_is_run_or_says_why_not():
    assert any(block.page == "README.md" and block.language == "python" for block in RUN)
    for block in BLOCKS:
        if block.mark is not None:
            assert block.reason, f"{block.id}: a {block.mark} mark without a reason"
            assert block.language in RUN_LANGUAGES, f"{block.id}: a mark on a block never run"


def test_every_fence_names_its_language():
    """A fence without a language is never run, so commands could hide in one: every block says
    what it holds (``text`` for output and diagrams)."""
    for page in PAGES:
        inside = False
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                if not inside:
                    assert line.strip() != "```", f"{page.name}:{number}: a fence with no language"
                inside = not inside


def test_the_parser_reads_marks_and_console_commands(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text(
        textwrap.dedent(
            """\
            Text.

            <!-- not-run: needs a cluster -->
            ```bash
            dask scheduler
            ```

            ```console
            $ fastce score --target labels.npy \\
                  --pred logits.npy
            output line
            $ echo done
            done
            ```
            """
        )
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    first, second = parse(page)
    assert (first.line, first.language, first.mark, first.reason) == (
        4,
        "bash",
        "not-run",
        "needs a cluster",
    )
    assert second.mark is None
    assert console_commands(second.code) == [
        "fastce score --target labels.npy \\\n      --pred logits.npy",
        "echo done",
    ]
    page.write_text("<!-- slow: takes an hour -->\n\nText.\n")
    with pytest.raises(ValueError, match="just above a fence"):
        parse(page)


# --- docs/api.md's signature table and the README's options sentence --------------------------


def _signature(function: Any) -> str:
    parts: list[str] = []
    star = False
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        text = parameter.name
        if parameter.default is not inspect.Parameter.empty:
            text += "=" + repr(parameter.default).replace("'", '"')
        parts.append(text)
    return f"{function.__name__}({', '.join(parts)})"


def _api_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for line in (ROOT / "docs" / "api.md").read_text(encoding="utf-8").splitlines():
        row = re.match(r"^\| (`[^|]*`) \| `([^`]*)`", line)
        if row and row.group(1) != "`function`":
            signature = row.group(2)
            for name in re.findall(r"`(\w+)`", row.group(1)):
                table[name] = re.sub(r"^\w+\(", f"{name}(", signature)
    return table


def test_api_table_gives_the_real_signatures():
    table = _api_table()
    public = {name for name in fastce.__all__ if callable(getattr(fastce, name))}
    # described in their own sections
    public -= {"Accumulator", "Result", "score_file", "Comparison", "ComparisonResult"}
    public -= {"Distribution"}
    assert set(table) == public
    for name, documented in table.items():
        assert documented == _signature(getattr(fastce, name)), name


# What the README's "Use" section says each function takes, among the shared options.
README_OPTIONS = {
    "entropy": {"axis", "reduction", "sample_weight", "base", "out"},
    "cross_entropy": {"axis", "reduction", "sample_weight", "base", "out"},
    "kl_divergence": {"axis", "reduction", "sample_weight", "base", "out"},
    "js_divergence": {"axis", "reduction", "sample_weight", "base", "out"},
    "binary_cross_entropy": {"reduction", "sample_weight", "base", "out"},
    "perplexity": {"axis", "sample_weight"},
    "log_loss": {"sample_weight"},
    "logsumexp": {"axis", "out"},
    "log_softmax": {"axis", "out"},
    "softmax": {"axis", "out"},
}


@pytest.mark.parametrize("name", sorted(README_OPTIONS))
def test_readme_says_which_options_each_function_takes(name):
    shared = {"axis", "reduction", "sample_weight", "base", "out"}
    parameters = set(inspect.signature(getattr(fastce, name)).parameters)
    assert parameters & shared == README_OPTIONS[name]
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"`{name}`" in readme


# --- the test extra -------------------------------------------------------------------------

# importorskip names and the distribution that provides them; PyTorch and JAX are the optional
# peers, the only tests that skip when something is missing.
DISTRIBUTIONS = {
    "dask": "dask",
    "datasketches": "datasketches",
    "distributed": "distributed",
    "matplotlib": "matplotlib",
    "ml_dtypes": "ml_dtypes",
    "mpmath": "mpmath",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "tqdm": "tqdm",
}
OPTIONAL_PEERS = {"torch", "jax"}


def _test_extra() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    body = re.search(r"^test = \[(.*?)^\]", text, re.M | re.S)
    assert body, "no test extra in pyproject.toml"
    names = set()
    for item in re.findall(r'"([^"]+)"', body.group(1)):
        name = re.match(r"[\w.-]+", item)
        assert name, item
        names.add(name.group(0).lower())
    return names


def test_the_test_extra_installs_what_the_suite_imports():
    extra = _test_extra()
    assert "matplotlib" in extra
    imported = set()
    for path in (ROOT / "tests").glob("*.py"):
        imported |= set(re.findall(r"importorskip\(\s*\"(\w+)", path.read_text(encoding="utf-8")))
    # a standard-library module skipped where the platform lacks it (resource) needs no extra
    for module in sorted(imported - OPTIONAL_PEERS - set(sys.stdlib_module_names)):
        assert module in DISTRIBUTIONS, f"{module}: which distribution? (add it here)"
        assert DISTRIBUTIONS[module] in extra, module


def test_readme_lists_the_test_extra():
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split()).lower()
    sentence = re.search(r"its `test` extra: (.*?)\):", readme)
    assert sentence, "the README no longer lists the test extra"
    for name in _test_extra():
        assert name.split("[")[0] in sentence.group(1), name


def test_skipped_tests_are_explained_in_the_summary(tmp_path):
    (tmp_path / "conftest.py").write_text((ROOT / "conftest.py").read_text(encoding="utf-8"))
    (tmp_path / "test_peer.py").write_text(
        "import pytest\n\n\ndef test_peer():\n    pytest.importorskip('no_such_peer_module')\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped: could not import 'no_such_peer_module'" in done.stdout, done.stdout
