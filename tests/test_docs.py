"""The documentation site (docs/): what it shows is generated from the code or produced by running it.

The build itself (``python -m sphinx -W``, run by ``.ci/run``) runs every ``tt-run`` command and fails on
any error; these tests check, without Sphinx, that the generators behave and that no page pastes output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tracedthreading
import tracedthreading.testing
from tracedthreading import _config

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
try:
    import ttgen
finally:
    sys.path.remove(str(DOCS / "_ext"))

PAGES = sorted(DOCS.rglob("*.rst"))
# What tracedthreading prints: a literal block holding any of these was pasted, not produced at build time.
OUTPUT_MARKERS = ("POSSIBLE DEADLOCK", "DEADLOCK:", "== tracedthreading", "[tracedthreading]", "acquisitions ",
                  "contentions ", "cycle:", "tracedthreading report:", "passed in", "failed in")


def literal_blocks(text: str) -> Iterator[tuple[str, list[str]]]:
    """(directive, lines) of every literal block of a page: ``code-block``s and ``::`` paragraphs."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        match = re.match(r"\s*\.\. code-block::\s*(\S*)", line)
        kind = f"code-block {match.group(1)}" if match else ("::" if line.rstrip().endswith("::")
                                                               and not line.lstrip().startswith("..") else None)
        index += 1
        if kind is None:
            continue
        indent = len(line) - len(line.lstrip())
        block: list[str] = []
        while index < len(lines) and (not lines[index].strip()
                                      or len(lines[index]) - len(lines[index].lstrip()) > indent):
            block.append(lines[index])
            index += 1
        body = [item for item in block if item.strip() and not item.strip().startswith(":")]
        yield kind, body


def tt_run_commands(text: str) -> Iterator[str]:
    """The commands of every ``.. tt-run::`` directive of a page."""
    for match in re.finditer(r"^\.\. tt-run::\n((?:[ ]{3}.*\n|\n)+)", text, flags=re.MULTILINE):
        for line in match.group(1).splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith(":"):
                yield stripped


def test_pages_found() -> None:
    """The site has its pages (a moved docs/ would make every other test here vacuous)."""
    names = {path.relative_to(DOCS).as_posix() for path in PAGES}
    for page in ("index.rst", "getting-started.rst", "lock-order.rst", "reports.rst", "graph-timeline.rst",
                 "configuration.rst", "events.rst", "pytest-plugin.rst", "runner.rst", "performance.rst",
                 "guarantees.rst", "api.rst", "tutorial/index.rst"):
        assert page in names, page


def test_no_page_pastes_output() -> None:
    """Literal blocks show code or commands only; every output shown comes from a ``tt-run`` at build time."""
    for page in PAGES:
        for kind, body in literal_blocks(page.read_text(encoding="utf-8")):
            if kind in ("code-block python", "code-block ini"):
                continue  # source, not a terminal
            text = "\n".join(body)
            for marker in OUTPUT_MARKERS:
                assert marker not in text, f"{page.name}: a {kind} block shows output ({marker!r}):\n{text}"
            if kind == "code-block console":
                assert all(line.strip().startswith("$ ") for line in body), f"{page.name}: output in\n{text}"


def test_literal_block_scanner_finds_pasted_output() -> None:
    """The scanner above sees a pasted report in a ``::`` block and output in a console block."""
    pasted = "Run it::\n\n    $ python x.py\n    POSSIBLE DEADLOCK: lock-order inversion\n\nAfter.\n"
    assert [("::", ["    $ python x.py", "    POSSIBLE DEADLOCK: lock-order inversion"])] == list(literal_blocks(pasted))
    console = ".. code-block:: console\n\n    $ python x.py\n    3\n"
    assert list(literal_blocks(console)) == [("code-block console", ["    $ python x.py", "    3"])]


def test_every_tt_run_names_files_that_exist() -> None:
    """Each documented command runs a script of examples/ or docs/snippets/ that is there."""
    commands = [command for page in PAGES for command in tt_run_commands(page.read_text(encoding="utf-8"))]
    assert len(commands) >= 20
    for command in commands:
        assert command.startswith("python "), command
        for path in re.findall(r"\b(?:examples|snippets)/[\w.]+\.py\b", command):
            where = ROOT / path if path.startswith("examples/") else DOCS / path
            assert where.is_file(), f"{command}: {path} does not exist"


def test_every_example_has_its_tutorial_output() -> None:
    """Every script in examples/ is run by a tutorial page, so its output there is the current one."""
    commands = " ".join(command for page in sorted((DOCS / "tutorial").glob("*.rst"))
                        for command in tt_run_commands(page.read_text(encoding="utf-8")))
    for script in sorted((ROOT / "examples").glob("*.py")):
        assert f"examples/{script.name}" in commands, script.name


def test_tutorial_index_lists_every_example_with_its_page() -> None:
    """The tutorial's index has a row per script of examples/, linking the page that runs it."""
    index = (DOCS / "tutorial" / "index.rst").read_text(encoding="utf-8")
    for script in sorted((ROOT / "examples").glob("*.py")):
        row = re.search(rf"^   \* - ``{re.escape(script.name)}``\n     - :doc:`(\S+?)`$", index, flags=re.MULTILINE)
        assert row, f"docs/tutorial/index.rst has no row for {script.name}"
        page = (DOCS / "tutorial" / f"{row.group(1)}.rst").read_text(encoding="utf-8")
        assert f"examples/{script.name}" in " ".join(tt_run_commands(page)), (script.name, row.group(1))


def test_run_commands_shows_the_command_and_its_output() -> None:
    """A transcript is the command as typed, then what it printed, with the repository path made relative."""
    text = ttgen.run_commands(["python examples/transfer_fixed.py"], stderr="hide")
    lines = text.splitlines()
    assert lines[0] == "$ python examples/transfer_fixed.py 2>/dev/null"
    assert "conserved: True" in text
    assert str(ROOT) not in text


def test_run_commands_refuses_a_wrong_exit_status() -> None:
    """A command that does not end as the page says is an error (a build error in Sphinx), not a transcript."""
    with pytest.raises(ttgen.CommandError, match="exited 0, the page expects 3"):
        ttgen.run_commands(["python -c pass"], returncode=3)
    with pytest.raises(ttgen.CommandError, match="exited 1"):
        ttgen.run_commands(["python -c 'raise SystemExit(1)'"])
    with pytest.raises(ttgen.CommandError, match="did not finish within"):
        ttgen.run_commands(["python -c 'import time; time.sleep(30)'"], timeout=0.5)


def test_run_commands_keeps_files_between_commands_and_shows_the_status() -> None:
    """A --log-file written by one command is read by the next; an expected exit status is shown."""
    text = ttgen.run_commands([
        "python -m tracedthreading --log-file run.jsonl examples/transfer_inversion.py",
        "python -m tracedthreading report run.jsonl --top 2",
    ], quiet=True)
    assert "both transfers completed" not in text  # quiet: only the last command's output
    assert "Lock-order inversions: 1" in text
    status = ttgen.run_commands(["python -m tracedthreading --fail-on-inversion examples/transfer_inversion.py"],
                                stderr="hide", returncode=3)
    assert status.endswith("$ echo $?\n3")


def test_settings_table_is_the_code_s() -> None:
    """Every setting is a row with its default and, when load_env reads one, its variable; nothing changes."""
    before = _config.CONFIG.as_dict()
    tracedthreading.configure(stack_depth=7)
    try:
        rows = {setting.name: setting for setting in ttgen.settings()}
        assert _config.CONFIG.stack_depth == 7  # asking load_env which variables it reads put this back
    finally:
        tracedthreading.configure(**before)
    defaults = _config.Config()
    assert set(rows) == set(defaults.__slots__)
    for name, setting in rows.items():
        assert setting.default == getattr(defaults, name)
        assert setting.meaning, name
    assert rows["stack_depth"].variable == "TRACEDTHREADING_STACK_DEPTH"
    assert rows["suppressions"].variable is None  # a file, read by _lockorder
    assert rows["trace"].variable is None  # started by the runner's --trace-file
    table = "\n".join(ttgen.settings_rst())
    for name in rows:
        assert f"``{name}``" in table
    assert "\n.. tt-settings::\n" in (DOCS / "configuration.rst").read_text(encoding="utf-8")


def test_every_environment_variable_is_documented() -> None:
    """Each TRACEDTHREADING_* variable the package reads is on the configuration page or in its table."""
    page = (DOCS / "configuration.rst").read_text(encoding="utf-8") + "\n".join(ttgen.settings_rst())
    source = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "src").rglob("*.py"))
    found = set(re.findall(r"TRACEDTHREADING_[A-Z_]*[A-Z]", source))
    assert "TRACEDTHREADING_PURE_PYTHON" in found
    missing = sorted(name for name in found if f"``{name}``" not in page)
    assert not missing, missing


def test_api_page_documents_every_addition() -> None:
    """Each name tracedthreading adds to threading's API has an autodoc entry on the API page."""
    page = (DOCS / "api.rst").read_text(encoding="utf-8")
    for name in tracedthreading._ADDITIONS:
        assert re.search(rf"^\.\. auto\w+:: tracedthreading\.{name}$", page, flags=re.MULTILINE), name
    for name in ("capture_events", "events_named"):
        assert name in tracedthreading.testing.__all__
    assert ".. automodule:: tracedthreading.testing" in page


def test_timeline_svg_draws_a_recorded_trace(tmp_path: Path) -> None:
    """The timeline picture has one row per thread that used the lock and a rectangle per hold and wait."""
    trace_file = tmp_path / "trace.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    subprocess.run([sys.executable, "-m", "tracedthreading", "--trace-file", str(trace_file),
                    str(ROOT / "examples" / "bank_account.py")], env=env, capture_output=True, timeout=60,
                   check=True)
    trace = json.loads(trace_file.read_text(encoding="utf-8"))
    svg = ttgen.timeline_svg(trace, lock="balance", window_ms=1e9)  # the whole run
    slices = [e for e in trace["traceEvents"] if e.get("ph") == "X" and e["args"]["lock"] == "balance"]
    holds = [e for e in slices if e["cat"] == "hold"]
    assert len(holds) == 2000  # one per deposit of the locked run
    assert svg.startswith("<svg ") and svg.rstrip().endswith("</svg>")
    assert svg.count(f'fill="{ttgen._HOLD}"><title>') == len(holds)
    assert svg.count(f'fill="{ttgen._WAIT}"><title>') == len(slices) - len(holds)
    threads = {e["tid"] for e in slices}
    assert svg.count('text-anchor="end"') == len(threads)
    with pytest.raises(ValueError, match="no hold or wait of 'nope'"):
        ttgen.timeline_svg(trace, lock="nope")


NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
# The lines of bank_account.py whose wording depends on the run: the race shows or happens not to, and
# the lock's blockers are some tellers or none (on 3.10 the lock is rarely contended).
RACE = re.compile(r"^without a lock: (race detected|no update was lost this time).*$")
BLOCKERS = re.compile(r"^(\s*blockers\s+).*$")


def masked(text: str) -> list[str]:
    """Lines with every number replaced by N, runs of spaces collapsed, the race line reduced to its label."""
    lines = []
    for line in text.strip("\n").splitlines():
        line = BLOCKERS.sub(r"\1<threads>", RACE.sub("without a lock: <race line>", line))
        lines.append(" ".join(NUMBER.sub("N", line).split()))
    return lines


def pasted_outputs(text: str) -> list[tuple[str, str, str]]:
    """(name, command, output) of every ``<!-- output:NAME -->`` fenced block of a Markdown page."""
    found = []
    for match in re.finditer(r"<!-- output:(\w+) -->\n```\w*\n\$ ([^\n]*)\n(.*?)```\n<!-- /output:\1 -->", text,
                             flags=re.DOTALL):
        found.append((match.group(1), match.group(2), match.group(3)))
    return found


def test_readme_is_short_and_its_output_is_current() -> None:
    """README.md is at most 12 kB, links into docs/ and examples/ only to files that exist, and the output
    it pastes is what the command prints now (numbers aside)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) <= 12 * 1024
    links = re.findall(r"\]\(((?:docs|examples)/[^)#]*)\)", readme)
    assert len(links) >= 10
    for link in links:
        assert (ROOT / link).exists(), link
    outputs = pasted_outputs(readme)
    assert [name for name, _, _ in outputs] == ["bank_account"]
    for _name, command, pasted in outputs:
        hidden = command.endswith(" 2>/dev/null")
        command = command.removesuffix(" 2>/dev/null")
        transcript = ttgen.run_commands([command], stderr="hide" if hidden else "merge")
        printed = transcript.split("\n", 1)[1]
        assert masked(pasted) == masked(printed)


def test_readme_commands_are_the_ones_ci_runs() -> None:
    """The README's two quick-start commands are there as written, and .ci/run runs its test command."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    run = "python -m pip install -e . && python -m tracedthreading --summary examples/bank_account.py"
    test = "python -m pip install -e '.[test]' && python -m pytest -q"
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.DOTALL)
    assert run in blocks and test in blocks
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(rf"^\s*{re.escape(test)} \|\| return 1$", ci, flags=re.MULTILINE)
    assert f'bash -c "{test}"' in ci  # the pure-Python hot path's run


def test_masked_comparison_sees_a_changed_line() -> None:
    """Numbers may differ between runs; words may not."""
    assert masked("  wait   total 868.010 ms, max 18.505 ms") == masked("  wait total 1.2 ms, max 3 ms")
    assert masked("  wait total 868.010 ms") != masked("  waited total 868.010 ms")
    assert masked("without a lock: race detected: expected 20,000, got 2,500 (1,750 deposits lost)") == masked(
        "without a lock: no update was lost this time (got 20,000); the race is still there")
    assert masked("  blockers      teller_0 x141, teller_6 x139") == masked("  blockers      none")


@pytest.mark.parametrize("graphviz", [True, False])
def test_pictures_are_drawn_with_or_without_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     graphviz: bool) -> None:
    """Every picture the pages show is made, by Graphviz where it is installed, else from the graphs last
    rendered (docs/pictures/) after the runner still wrote them as DOT: a machine with only Python
    builds the docs too."""
    if graphviz and ttgen.shutil.which("dot") is None:
        pytest.skip("Graphviz is not installed here: the case without it is the one CI relies on")
    if not graphviz:
        monkeypatch.setattr(ttgen.shutil, "which", lambda name, *args, **kwargs: None)
    written = ttgen.generate_pictures(tmp_path)
    assert sorted(path.name for path in written) == ["inversion.svg", "philosophers.svg", "timeline.svg"]
    for path in written:
        assert path.read_text(encoding="utf-8").lstrip().startswith(("<?xml", "<svg", "<!DOCTYPE")), path
    if not graphviz:
        assert (tmp_path / "inversion.svg").read_bytes() == (ttgen.PICTURES / "inversion.svg").read_bytes()
