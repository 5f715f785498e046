"""``python -m tracedthreading``, end to end in subprocesses: modes, argv, exit codes, log file, summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracedthreading import _events

SRC = str(Path(__file__).resolve().parents[1] / "src")

# Prints what it sees, takes two locks in both orders (an inversion), then exits with argv[1].
SCRIPT = """
import sys, threading
first = threading.Lock()
second = threading.Lock()
print("argv", sys.argv)
print("path0", sys.path[0])
print("name", __name__, sys.modules["__main__"].__dict__ is globals())
print("traced", type(first).__module__)
def forward():
    with first:
        with second:
            pass
def backward():
    with second:
        with first:
            pass
for target in (forward, backward):
    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
code = sys.argv[1] if len(sys.argv) > 1 else "0"
if code == "raise":
    raise ValueError("boom")
sys.exit(int(code) if code.isdigit() else code)
"""


def tt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tracedthreading ARGS`` in ``cwd``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "tracedthreading", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    """The test script, in a sub-directory so sys.path[0] is distinguishable from the cwd."""
    path = tmp_path / "sub" / "prog.py"
    path.parent.mkdir()
    path.write_text(SCRIPT)
    return path


def test_script_mode_sees_what_python_gives_it(script: Path, tmp_path: Path) -> None:
    """argv, sys.path[0] and __main__ are as with ``python prog.py``; threading is traced; exit code 0."""
    result = tt("sub/prog.py", "0", "--flag", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "argv ['sub/prog.py', '0', '--flag']" in result.stdout
    assert f"path0 {script.parent.resolve()}" in result.stdout
    assert "name __main__ True" in result.stdout
    assert "traced tracedthreading" in result.stdout


@pytest.mark.parametrize(("arg", "code"), [("7", 7), ("0", 0), ("message", 1)])
def test_exit_codes_propagate(script: Path, tmp_path: Path, arg: str, code: int) -> None:
    """sys.exit(n) exits n; sys.exit("text") prints the text and exits 1."""
    result = tt(str(script), arg, cwd=tmp_path)
    assert result.returncode == code
    if arg == "message":
        assert "message" in result.stderr.splitlines()


def test_uncaught_exception_prints_traceback_and_exits_1(script: Path, tmp_path: Path) -> None:
    """An uncaught exception shows the target's traceback (not the runner's frames) and exits 1."""
    result = tt(str(script), "raise", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: boom" in result.stderr
    assert "_cli.py" not in result.stderr and "runpy" not in result.stderr


def test_module_mode(tmp_path: Path) -> None:
    """``-m package.module args`` runs it as __main__ with argv[0] set to its file, like python -m."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tool.py").write_text(SCRIPT)
    result = tt("--summary", "-m", "pkg.tool", "5", "x", cwd=tmp_path)
    assert result.returncode == 5
    assert f"argv [{str(package / 'tool.py')!r}, '5', 'x']" in result.stdout
    assert "name __main__ True" in result.stdout
    assert "traced tracedthreading" in result.stdout


@pytest.mark.parametrize("args", [
    [], ["--bogus", "x.py"], ["--top", "zero", "x.py"], ["--contended-threshold", "-1", "x.py"],
    ["missing.py"], ["-m", "no_such_module_here"], ["-m"], ["--log-file", "/nonexistent/dir/log", "x.py"],
])
def test_usage_errors_exit_2_on_one_line(tmp_path: Path, args: list[str]) -> None:
    """Bad options, a missing script or module: one clear line on stderr, exit code 2, no traceback."""
    (tmp_path / "x.py").write_text("print('ran')\n")
    result = tt(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("python -m tracedthreading: error: ")
    assert "ran" not in result.stdout


def test_log_file_is_json_lines_with_known_events_and_summary(script: Path, tmp_path: Path) -> None:
    """Every line is a JSON object with event/level/timestamp; events are in SCHEMA; the summary is last."""
    log = tmp_path / "events.jsonl"
    result = tt("--log-file", str(log), "--held-long-threshold", "0", str(script), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records
    for record in records:
        assert record["event"] in _events.SCHEMA
        assert {"level", "timestamp"} <= set(record)
    names = [record["event"] for record in records]
    assert "lock.order_inversion" in names and "lock.held_long" in names
    assert names.count("tracedthreading.summary") == 1 and names[-1] == "tracedthreading.summary"
    summary = records[-1]
    assert {lock["name"] for lock in summary["locks"]} >= {"__main__:3", "__main__:4"}
    assert len(summary["inversions"]) == 1 and summary["deadlocks"] == []


def test_summary_carries_the_order_graph_of_live_locks(tmp_path: Path) -> None:
    """The summary event lists order edges with counts, for `report --graph` to draw the whole graph."""
    (tmp_path / "nest.py").write_text(
        "import threading\nouter = threading.Lock()\ninner = threading.RLock()\n"
        "for _ in range(3):\n    with outer:\n        with inner:\n            pass\n"
    )
    log = tmp_path / "run.jsonl"
    proc = tt("--log-file", str(log), "nest.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [summary] = [json.loads(line) for line in log.read_text().splitlines()
                 if json.loads(line)["event"] == "tracedthreading.summary"]
    assert [(e["src"], e["dst"], e["count"]) for e in summary["order_edges"]] == [("__main__:2", "__main__:3", 3)]


def test_summary_and_fail_on_inversion(script: Path, tmp_path: Path) -> None:
    """--summary prints the tables and the inversion; --fail-on-inversion turns success into exit 3."""
    result = tt("--summary", "--top", "1", "--fail-on-inversion", str(script), cwd=tmp_path)
    assert result.returncode == 3
    assert "top 1 contended locks" in result.stderr and "top 1 longest held locks" in result.stderr
    assert "POSSIBLE DEADLOCK: lock-order inversion" in result.stderr
    assert tt("--fail-on-inversion", str(script), "4", cwd=tmp_path).returncode == 4  # the script's failure wins


def test_threads_are_joined_before_the_summary(tmp_path: Path) -> None:
    """A non-daemon thread still running when the script ends is counted in the summary."""
    (tmp_path / "late.py").write_text(
        "import threading, time\n"
        "lock = threading.Lock()\n"
        "def late():\n"
        "    time.sleep(0.2)\n"
        "    with lock:\n"
        "        pass\n"
        "threading.Thread(target=late).start()\n"
    )
    log = tmp_path / "log.jsonl"
    result = tt("--log-file", str(log), "late.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(log.read_text().splitlines()[-1])
    assert [lock["acquisitions"] for lock in summary["locks"] if lock["name"] == "__main__:2"] == [1]


def test_report_subcommand_is_delegated(tmp_path: Path) -> None:
    """``report`` hands its arguments to the report tool, which reads the runner's log file."""
    (tmp_path / "x.py").write_text("import threading\nwith threading.Lock():\n    pass\n")
    assert tt("--log-file", "log.jsonl", "x.py", cwd=tmp_path).returncode == 0
    result = tt("report", "log.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "__main__:2" in result.stdout


def test_trace_file_is_written(tmp_path: Path) -> None:
    """--trace-file starts the timeline trace before the target and writes it at exit."""
    (tmp_path / "x.py").write_text("import threading\nwith threading.Lock():\n    pass\n")
    result = tt("--trace-file", "trace.json", "x.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "traceEvents" in json.loads((tmp_path / "trace.json").read_text())


@pytest.fixture(scope="module", autouse=True)
def stdlib_queue_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[str]]:
    """CPython's test.test_queue under the runner, started early so it overlaps the other tests."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "tracedthreading", "-m", "unittest", "test.test_queue"],
        cwd=tmp_path_factory.mktemp("queue"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_stdlib_queue_tests_pass_under_the_runner(stdlib_queue_run: subprocess.Popen[str]) -> None:
    """``python -m tracedthreading -m unittest test.test_queue`` passes (exit 0)."""
    _out, err = stdlib_queue_run.communicate(timeout=300)
    assert stdlib_queue_run.returncode == 0, err[-3000:]
    assert "OK" in err


@pytest.mark.parametrize("pure", [False, True], ids=["default", "TRACEDTHREADING_PURE_PYTHON=1"])
def test_version_names_the_hot_path_in_one_line(pure: bool) -> None:
    """``--version`` prints one line: the version, and whether the C extension or the pure path runs (and why)."""
    import importlib.util

    env = {key: value for key, value in os.environ.items() if key != "TRACEDTHREADING_PURE_PYTHON"}
    env["PYTHONPATH"] = SRC
    if pure:
        env["TRACEDTHREADING_PURE_PYTHON"] = "1"
    proc = subprocess.run([sys.executable, "-m", "tracedthreading", "--version"], capture_output=True, text=True,
                          timeout=60, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert line.startswith("tracedthreading ") and f"(Python {sys.version.split()[0]})" in line
    built = importlib.util.find_spec("tracedthreading._speedups") is not None
    if pure:
        assert line.endswith("lock hot path: pure Python (TRACEDTHREADING_PURE_PYTHON is set)")
    elif built:
        assert line.endswith("lock hot path: C extension (tracedthreading._speedups)")
    else:
        assert "lock hot path: pure Python (the C extension was not built: no compiler when it was installed?)" in line


def test_summary_notes_the_pure_path_in_one_line(tmp_path: Path) -> None:
    """Under the pure-Python path the --summary ends with the one-line notice saying so and why."""
    script = tmp_path / "one_lock.py"
    script.write_text("import threading\nlock = threading.Lock()\nwith lock:\n    pass\n")
    env = {**os.environ, "PYTHONPATH": SRC, "TRACEDTHREADING_PURE_PYTHON": "1"}
    proc = subprocess.run([sys.executable, "-m", "tracedthreading", "--summary", str(script)], capture_output=True,
                          text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1] == (
        "tracedthreading: lock hot path: pure Python (TRACEDTHREADING_PURE_PYTHON is set)")


FORKING = """
import os, sys, threading, time
lock = threading.Lock()
with lock:
    pass
parent = os.getpid()
if os.fork() == 0:  # the child outlives the parent (its trace and summary done), then ends normally
    deadline = time.monotonic() + 20
    while os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    print("child", os.getpid(), flush=True)
    {end}
else:
    print("parent", os.getpid(), flush=True)
"""


@pytest.mark.parametrize("how", ["falls off the end", "sys.exit"])
def test_forked_child_of_the_target_skips_the_runners_exit_steps(tmp_path: Path, how: str) -> None:
    """A target that forks: the child ending normally prints no second summary, logs no second summary
    event into the shared log and leaves the parent's trace file alone."""
    script = tmp_path / "forks.py"
    end = "sys.exit(0)" if how == "sys.exit" else "pass"
    script.write_text(FORKING.replace("{end}", end))
    log, trace = tmp_path / "log.jsonl", tmp_path / "trace.json"
    proc = tt("--summary", "--log-file", str(log), "--trace-file", str(trace), str(script), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    pids = dict(line.split() for line in proc.stdout.split("\n") if line)
    assert set(pids) == {"parent", "child"}, proc.stdout
    assert proc.stderr.count("top 10 contended locks") == 1, proc.stderr
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events].count(_events.SUMMARY) == 1
    recorded = json.loads(trace.read_text())
    records = recorded["traceEvents"] if isinstance(recorded, dict) else recorded
    assert {str(e["pid"]) for e in records} == {pids["parent"]}


def test_summary_shows_the_other_names_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TRACEDTHREADING_MAX_DEAD_NAMES=2 and 10 short-lived named locks: --summary lists 2 by name and
    "(8 other names)"; the summary event in the log carries folded_names."""
    script = tmp_path / "names.py"
    script.write_text("import threading\nfor i in range(10):\n    with threading.Lock(name=f'conn-{i}'):\n"
                      "        pass\n")
    monkeypatch.setenv("TRACEDTHREADING_MAX_DEAD_NAMES", "2")
    proc = tt("--summary", "--log-file", str(tmp_path / "log.jsonl"), str(script), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "(8 other names)" in proc.stderr
    assert "conn-0" in proc.stderr and "conn-1" in proc.stderr and "conn-5" not in proc.stderr
    [summary] = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()
                 if json.loads(line)["event"] == _events.SUMMARY]
    assert [(row["name"], row["folded_names"]) for row in summary["locks"] if row["folded_names"]] == [
        ("(other names)", 8)]
