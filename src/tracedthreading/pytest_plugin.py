"""The pytest plugin (``pytest11`` entry point ``tracedthreading``): lock-order inversions fail the test.

Off unless enabled: ``--tracedthreading``, ini ``tracedthreading = true`` or ``TRACEDTHREADING_PYTEST=1``
(command line > environment > ini > default). When on, ``threading`` is patched for the session (before
the top-level conftest.py files load: ``pytest_load_initial_conftests``), each
test runs with ``_lockorder.context``/``_deadlock.context`` set to its node id, and a test during which
a new inversion or deadlock appears fails with the report, naming the test(s) that took the other order.
``@pytest.mark.allow_lock_inversion`` exempts a test. The ``tracedthreading_snapshot`` fixture works
whether or not the plugin is on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import pytest

import tracedthreading
from tracedthreading import _config, _deadlock, _lockorder, patching
from tracedthreading.snapshot import DeadlockReport, Inversion, Snapshot

__all__ = ["tracedthreading_snapshot"]

_SCOPES = ("session", "test")
_MARKER = (
    "allow_lock_inversion: a lock-order inversion or deadlock reported by tracedthreading while this test "
    "runs does not fail it (the report is still kept and logged)"
)


def _flag(source: str, value: Any) -> bool:
    return _config._flag(source, value)


def _scope(source: str, value: Any) -> str:
    text = str(value).strip().lower()
    if text not in _SCOPES:
        msg = f"{source} must be one of {', '.join(map(repr, _SCOPES))}, got {value!r}"
        raise ValueError(msg)
    return text


def _top(source: str, value: Any) -> int:
    return _config._count(source, value, minimum=1)


# setting -> (command-line option, ini name, environment variable, parser, default, help)
_SETTINGS: dict[str, tuple[str, str, str, Callable[[str, Any], Any], Any, str]] = {
    "enabled": ("--tracedthreading", "tracedthreading", "TRACEDTHREADING_PYTEST", _flag, False,
                "trace threading's locks: a new lock-order inversion or deadlock fails the test"),
    "scope": ("--tracedthreading-scope", "tracedthreading_scope", "TRACEDTHREADING_PYTEST_SCOPE", _scope, "session",
              "lock-order history kept for the whole 'session' (default) or reset before each 'test'"),
    "top": ("--tracedthreading-top", "tracedthreading_top", "TRACEDTHREADING_PYTEST_TOP", _top, 10,
            "rows of the terminal summary's lock table (default 10)"),
}


@dataclass
class _Settings:
    enabled: bool = False
    scope: str = "session"
    top: int = 10


@dataclass
class _State:
    """The plugin's per-session state, kept in ``config.stash``."""

    settings: _Settings
    undo: Any = None  # the patched() context manager to exit at cleanup
    failed: list[tuple[str, Inversion | DeadlockReport]] = field(default_factory=list)
    allowed: list[tuple[str, Inversion | DeadlockReport]] = field(default_factory=list)
    worker_snapshots: list[Snapshot] = field(default_factory=list)


_STATE = pytest.StashKey[_State]()
_BEFORE = pytest.StashKey[tuple[set[int], set[int]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """One option group; every command-line option has an ini twin (and an environment variable)."""
    group = parser.getgroup("tracedthreading", "lock contention and lock-order checks (tracedthreading)")
    for name, (option, ini, env, _parse, default, text) in _SETTINGS.items():
        if name == "enabled":
            group.addoption(option, action="store_const", const="true", default=None, dest=ini,
                            help=f"{text} (ini: {ini}, env: {env})")
            group.addoption("--no-tracedthreading", action="store_const", const="false", dest=ini,
                            help="turn the plugin off even if the ini file or environment turns it on")
        else:
            group.addoption(option, action="store", default=None, dest=ini, metavar="VALUE",
                            help=f"{text} (ini: {ini}, env: {env})")
        parser.addini(ini, f"{text} (default {default})", default="")


def _resolve(config: pytest.Config, *, early: bool = False) -> _Settings:
    """Each setting from the command line, else the environment, else the ini file, else its default.

    ``early``: before the command line is fully parsed (``pytest_load_initial_conftests``), where only
    the options known so far can be read. A bad value raises ``pytest.UsageError`` naming where it came from.
    """
    values: dict[str, Any] = {}
    for name, (option, ini, env, parse, default, _text) in _SETTINGS.items():
        if early:
            cli_value = getattr(config.known_args_namespace, ini, None)
        else:
            cli_value = config.getoption(ini)
        ini_value = config.getini(ini)
        if cli_value is not None:
            source, raw = f"command-line option {option if name != 'enabled' else '--[no-]tracedthreading'}", cli_value
        elif os.environ.get(env, "") != "":
            source, raw = f"environment variable {env}", os.environ[env]
        elif ini_value not in ("", None):
            where = f" in {config.inipath}" if config.inipath else ""
            source, raw = f"ini option {ini}{where}", ini_value
        else:
            values[name] = default
            continue
        try:
            values[name] = parse(source, raw)
        except ValueError as exc:
            raise pytest.UsageError(f"tracedthreading: {exc}") from None
    return _Settings(**values)


def _start(config: pytest.Config, settings: _Settings) -> None:
    """Patch ``threading`` for the session (undone at cleanup) and keep the state in ``config.stash``."""
    if _config.env_error is not None:  # a bad TRACEDTHREADING_* variable matters only to runs that enable it
        raise pytest.UsageError(f"tracedthreading: {_config.env_error}")
    state = _State(settings)
    config.stash[_STATE] = state
    # patched() undoes only a patch it made: an outer patch (a pytester run inside a traced session) stays.
    state.undo = patching.patched()
    state.undo.__enter__()
    config.add_cleanup(lambda: state.undo.__exit__(None, None, None))


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """When enabled, patch before the top-level conftest.py files (and all they import) are loaded.

    Module-level locks of the code under test, made when a conftest imports it, are then traced.
    """
    settings = _resolve(early_config, early=True)
    if settings.enabled and _state(early_config) is None:
        _start(early_config, settings)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker; when enabled and not patched yet (a plugin loaded late), patch now."""
    config.addinivalue_line("markers", _MARKER)
    settings = _resolve(config)
    state = _state(config)
    if state is not None:
        state.settings = settings  # the fully parsed command line: same values, now authoritative
        return
    if settings.enabled:
        _start(config, settings)


def _state(config: pytest.Config) -> _State | None:
    return config.stash.get(_STATE, None)


def _set_context(nodeid: str) -> None:
    _lockorder.context = nodeid
    _deadlock.context = nodeid


def _seen() -> tuple[set[int], set[int]]:
    return {id(i) for i in _lockorder.inversions()}, {id(d) for d in _deadlock.deadlocks()}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    """Start of a test: reset the order history (scope=test), note the reports already seen, set the context."""
    state = _state(item.config)
    if state is not None:
        if state.settings.scope == "test":
            _lockorder.reset()
        item.stash[_BEFORE] = _seen()
        _set_context(item.nodeid)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """After the test body: a new inversion or deadlock fails the test, unless it is marked as allowed."""
    state = _state(item.config)
    if state is None:
        return (yield)
    _set_context(item.nodeid)
    if _BEFORE not in item.stash:
        item.stash[_BEFORE] = _seen()
    try:
        result = yield
    except BaseException:
        _check(item, state, failed=True)
        raise
    _check(item, state, failed=False)
    return result


def _check(item: pytest.Item, state: _State, *, failed: bool) -> None:
    """Fail the test for reports that appeared while it ran (or, if it failed already, attach them)."""
    seen_inversions, seen_deadlocks = item.stash[_BEFORE]
    found: list[Inversion | DeadlockReport] = [i for i in _lockorder.inversions() if id(i) not in seen_inversions]
    found += [d for d in _deadlock.deadlocks() if id(d) not in seen_deadlocks]
    item.stash[_BEFORE] = _seen()
    if not found:
        return
    if item.get_closest_marker("allow_lock_inversion") is not None:
        state.allowed.extend((item.nodeid, report) for report in found)
        return
    state.failed.extend((item.nodeid, report) for report in found)
    text = failure_text(item.nodeid, found)
    if failed:
        item.add_report_section("call", "tracedthreading", text)  # keep the test's own error in front
        return
    pytest.fail(text, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, Any]:
    """Teardown still belongs to the test: keep its context, then clear it."""
    if _state(item.config) is None:
        return (yield)
    _set_context(item.nodeid)
    try:
        return (yield)
    finally:
        _set_context("")


def failure_text(nodeid: str, found: list[Inversion | DeadlockReport]) -> str:
    """The failure message: which test closed the cycle, which earlier tests took the other order, the reports."""
    lines = []
    for report in found:
        if isinstance(report, Inversion):
            lines.append(f"tracedthreading: lock-order inversion closed by this test ({nodeid})")
            earlier = sorted({edge.context for edge in report.edges if edge.context and edge.context != nodeid})
            own = [edge for edge in report.edges if edge.context == nodeid]
            if earlier:
                lines.append("the other order was taken earlier by: " + ", ".join(earlier))
            elif own and len(own) == len(report.edges):
                lines.append("every order of the cycle was taken by this test itself")
            else:
                lines.append("the other order was taken earlier in this session (the test was not recorded)")
        else:
            lines.append(f"tracedthreading: deadlock detected while this test ran ({nodeid})")
        lines.append(str(report))
        lines.append("")
    lines.append("Mark the test with @pytest.mark.allow_lock_inversion to accept this.")
    return "\n".join(lines)


@pytest.fixture
def tracedthreading_snapshot() -> Callable[[], Snapshot]:
    """A callable taking a fresh :class:`tracedthreading.Snapshot` each time it is called."""
    return tracedthreading.snapshot


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In an xdist worker, hand this worker's snapshot to the controller (``workeroutput``)."""
    config = session.config
    if _state(config) is not None and hasattr(config, "workerinput"):
        config.workeroutput["tracedthreading"] = tracedthreading.snapshot().as_dict()  # type: ignore[attr-defined]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect the snapshot a worker sent, for the terminal summary."""
    state = _state(node.config)
    output = getattr(node, "workeroutput", None) or {}
    if state is not None and "tracedthreading" in output:
        state.worker_snapshots.append(Snapshot.from_dict(output["tracedthreading"]))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The top contended locks (all workers' under xdist), and the inversions that failed or were allowed."""
    state = _state(config)
    if state is None:
        return
    from tracedthreading.snapshot import merge
    from tracedthreading._report import format_lock_table

    snap = tracedthreading.snapshot()
    if state.worker_snapshots:
        snap = merge([snap, *state.worker_snapshots])
    top = state.settings.top
    terminalreporter.write_sep("-", f"tracedthreading: top {top} contended locks")
    terminalreporter.write_line(format_lock_table(snap.locks, top))
    for label, entries in (("failed", state.failed), ("allowed", state.allowed)):
        for nodeid, report in entries:
            what = "inversion " + " -> ".join(report.locks) if isinstance(report, Inversion) else "deadlock"
            terminalreporter.write_line(f"tracedthreading: {label}: {nodeid}: {what}")
    if not state.failed and not state.allowed:
        terminalreporter.write_line("tracedthreading: no lock-order inversions, no deadlocks")
