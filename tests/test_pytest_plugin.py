"""The pytest plugin, driven through pytester: inversions fail tests, marker, fixture, scope, summary."""

from __future__ import annotations

import json
import threading
from importlib import metadata

import pytest

from tracedthreading import patching

pytest_plugins = ["pytester"]

# Two tests taking two locks in opposite orders: together they close a lock-order cycle.
INVERSION = """
import threading
import pytest

first = threading.Lock()
second = threading.Lock()

def test_a():
    with first:
        with second:
            pass

{marker}
def test_b():
    with second:
        with first:
            pass
"""


def _plugin_args() -> list[str]:
    """``-p`` the plugin module only when its entry point is not installed (PYTHONPATH=src runs).

    Other installed plugins are kept out: pytester re-imports them for every in-process run (seconds).
    """
    names = {ep.name for ep in metadata.entry_points(group="pytest11")}
    args = [arg for name in sorted(names - {"tracedthreading"}) for arg in ("-p", f"no:{name}")]
    return args if "tracedthreading" in names else [*args, "-p", "tracedthreading.pytest_plugin"]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest in-process with the plugin available."""
    return pytester.runpytest(*_plugin_args(), *args)


def test_inversion_fails_the_test_with_the_report(pytester: pytest.Pytester) -> None:
    """The test closing the cycle fails with both stacks and its own node id; the earlier one passes."""
    pytester.makepyfile(test_inv=INVERSION.format(marker=""))
    result = run(pytester, "--tracedthreading")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAILED test_inv.py::test_b*"])
    out = result.stdout.str()
    assert "lock-order inversion closed by this test (test_inv.py::test_b)" in out
    assert "the other order was taken earlier by: test_inv.py::test_a" in out
    assert "POSSIBLE DEADLOCK: lock-order inversion" in out
    assert "test_inv.py:9 in test_a" in out and "test_inv.py:15 in test_b" in out
    assert "allow_lock_inversion" in out


def test_marker_exempts_the_test(pytester: pytest.Pytester) -> None:
    """``@pytest.mark.allow_lock_inversion`` keeps the test passing; the summary lists it as allowed."""
    pytester.makepyfile(test_inv=INVERSION.format(marker="@pytest.mark.allow_lock_inversion"))
    result = run(pytester, "--tracedthreading", "--strict-markers")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["tracedthreading: allowed: test_inv.py::test_b: inversion *"])


def test_plugin_is_off_by_default(pytester: pytest.Pytester) -> None:
    """Without enabling it nothing is patched, nothing fails and no summary is printed."""
    pytester.makepyfile(test_inv=INVERSION.format(marker=""), test_probe="""
import threading
def test_probe():
    assert type(threading.Lock()).__module__ != "tracedthreading"
""")
    result = run(pytester)
    result.assert_outcomes(passed=3)
    assert "tracedthreading:" not in result.stdout.str()


def test_environment_enables_and_command_line_wins(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """TRACEDTHREADING_PYTEST=1 turns it on; ``--no-tracedthreading`` overrides the environment."""
    pytester.makepyfile(test_inv=INVERSION.format(marker=""))
    monkeypatch.setenv("TRACEDTHREADING_PYTEST", "1")
    run(pytester).assert_outcomes(passed=1, failed=1)
    run(pytester, "--no-tracedthreading").assert_outcomes(passed=2)


def test_ini_enables_it(pytester: pytest.Pytester) -> None:
    """``tracedthreading = true`` in the ini file turns the plugin on."""
    pytester.makeini("[pytest]\ntracedthreading = true\n")
    pytester.makepyfile(test_inv=INVERSION.format(marker=""))
    run(pytester).assert_outcomes(passed=1, failed=1)


def test_bad_values_name_their_source(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad ini value or environment variable is a usage error naming where it came from."""
    pytester.makeini("[pytest]\ntracedthreading = true\ntracedthreading_scope = module\n")
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option tracedthreading_scope in *tox.ini must be one of 'session', 'test'*"])
    monkeypatch.setenv("TRACEDTHREADING_PYTEST", "maybe")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*environment variable TRACEDTHREADING_PYTEST must be a boolean*"])


def test_scope_test_resets_the_history(pytester: pytest.Pytester) -> None:
    """With ``--tracedthreading-scope=test`` (or its ini twin) orders from earlier tests are forgotten."""
    pytester.makepyfile(test_inv=INVERSION.format(marker=""))
    run(pytester, "--tracedthreading", "--tracedthreading-scope=test").assert_outcomes(passed=2)
    pytester.makeini("[pytest]\ntracedthreading_scope = test\n")
    run(pytester, "--tracedthreading").assert_outcomes(passed=2)
    run(pytester, "--tracedthreading", "--tracedthreading-scope=session").assert_outcomes(passed=1, failed=1)


def test_inversion_inside_one_test_fails_it(pytester: pytest.Pytester) -> None:
    """A cycle closed by two threads of the same test fails that test, saying it took every order."""
    pytester.makepyfile(test_one="""
import threading

def test_both_orders():
    a, b = threading.Lock(), threading.RLock()
    def forward():
        with a:
            with b:
                pass
    def backward():
        with b:
            with a:
                pass
    for target in (forward, backward):
        thread = threading.Thread(target=target)
        thread.start()
        thread.join(30)
""")
    result = run(pytester, "--tracedthreading")
    result.assert_outcomes(failed=1)
    assert "every order of the cycle was taken by this test itself" in result.stdout.str()


def test_failing_test_keeps_its_own_error(pytester: pytest.Pytester) -> None:
    """When the test already failed, its error stays and the report is added as a section."""
    source = INVERSION.format(marker="") + "    assert 1 == 2\n"  # test_b fails on its own as well
    pytester.makepyfile(test_inv=source)
    result = run(pytester, "--tracedthreading")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "assert 1 == 2" in out
    assert "tracedthreading" in out and "POSSIBLE DEADLOCK" in out


def test_fixture_returns_fresh_snapshots(pytester: pytest.Pytester) -> None:
    """``tracedthreading_snapshot()`` reflects acquisitions made since the previous call."""
    pytester.makepyfile(test_fx="""
import threading

def test_fx(tracedthreading_snapshot):
    lock = threading.Lock()
    with lock:
        pass
    name = lock.name
    assert tracedthreading_snapshot().lock(name).acquisitions == 1
    with lock:
        pass
    assert tracedthreading_snapshot().lock(name).acquisitions == 2
""")
    run(pytester, "--tracedthreading").assert_outcomes(passed=1)


def test_terminal_summary_shows_the_lock_table(pytester: pytest.Pytester) -> None:
    """The terminal summary has the top contended locks table, sized by ``--tracedthreading-top``."""
    pytester.makepyfile(test_inv=INVERSION.format(marker="@pytest.mark.allow_lock_inversion"))
    result = run(pytester, "--tracedthreading", "--tracedthreading-top=1")
    result.stdout.fnmatch_lines(["*tracedthreading: top 1 contended locks*", "name*kind*acq*contended*"])
    table = result.stdout.str().split("top 1 contended locks")[1].split("tracedthreading: allowed")[0]
    assert len([line for line in table.splitlines()[1:] if line.strip()]) == 2  # the header and one row


def test_unpatched_after_the_session(pytester: pytest.Pytester) -> None:
    """The session's patch is undone at cleanup, restoring the stdlib factories."""
    original = threading.Lock
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    run(pytester, "--tracedthreading").assert_outcomes(passed=1)
    assert threading.Lock is original
    assert not patching.is_patched()


def test_xdist_worker_hands_its_snapshot_over(pytester: pytest.Pytester) -> None:
    """In a worker (``config.workerinput`` set) the snapshot goes to ``workeroutput`` for the controller."""
    pytester.makeconftest("""
import json
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.workerinput = {"workerid": "gw0"}
    config.workeroutput = {}

@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    with open("workeroutput.json", "w") as stream:
        json.dump(session.config.workeroutput, stream)
""")
    pytester.makepyfile(test_w="""
import threading

def test_w():
    with threading.Lock():
        pass
""")
    run(pytester, "--tracedthreading").assert_outcomes(passed=1)
    output = json.loads((pytester.path / "workeroutput.json").read_text())
    names = [lock["name"] for lock in output["tracedthreading"]["locks"]]
    assert "test_w:4" in names


def test_xdist_controller_merges_the_workers_snapshots(pytester: pytest.Pytester) -> None:
    """The controller's summary lists the locks of the snapshots its workers sent (``pytest_testnodedown``)."""
    pytester.makeconftest("""
import types
import pytest
from tracedthreading import pytest_plugin

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    worker = {"locks": [{"name": "from_gw1", "kind": "lock", "acquisitions": 3}]}
    node = types.SimpleNamespace(config=session.config, workeroutput={"tracedthreading": worker})
    pytest_plugin.pytest_testnodedown(node, None)
""")
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = run(pytester, "--tracedthreading")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*from_gw1*lock*3*"])


# A module of the code under test with module-level locks, imported by the top-level conftest.py.
REGISTRY = """
import threading

registry_lock = threading.Lock()
cache_lock = threading.Lock()
"""

REGISTRY_TESTS = """
import registry_under_test as registry

def test_register():
    with registry.registry_lock:
        with registry.cache_lock:
            pass

def test_evict():
    with registry.cache_lock:
        with registry.registry_lock:
            pass
"""


def test_locks_made_by_modules_the_conftest_imports_are_traced(pytester: pytest.Pytester) -> None:
    """The patch is in place before conftest.py loads: its imports' module-level locks are traced."""
    pytester.makepyfile(registry_under_test=REGISTRY, test_registry=REGISTRY_TESTS)
    pytester.makeconftest("import registry_under_test\n")
    result = run(pytester, "--tracedthreading")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*lock-order inversion closed by this test (test_registry.py::test_evict)*",
                                 "*the other order was taken earlier by: test_registry.py::test_register*"])


def test_early_patch_follows_the_ini_file_and_the_environment(pytester: pytest.Pytester,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Turned on by the ini file or the environment, the patch also precedes the conftest; off, nothing is patched."""
    pytester.makepyfile(registry_under_test=REGISTRY, test_registry=REGISTRY_TESTS)
    pytester.makeconftest("import registry_under_test\n")
    pytester.makeini("[pytest]\ntracedthreading = true\n")
    run(pytester).assert_outcomes(passed=1, failed=1)
    run(pytester, "--no-tracedthreading").assert_outcomes(passed=2)
    monkeypatch.setenv("TRACEDTHREADING_PYTEST", "0")
    run(pytester).assert_outcomes(passed=2)
    assert not patching.is_patched()
