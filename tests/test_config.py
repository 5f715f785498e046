"""Configuration: validation with errors naming the setting, and TRACEDTHREADING_* variables."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import tracedthreading
from tracedthreading import _config


@pytest.mark.parametrize(("name", "value"), [
    ("contended_threshold", -1), ("contended_threshold", "abc"), ("held_long_threshold", float("nan")),
    ("wait_long_threshold", True), ("stack_depth", 0), ("stack_depth", 2.5), ("enabled", "maybe"),
    ("on_inversion", "explode"), ("suppressions", "a-string"), ("suppressions", [7]), ("trace_buffer", -3),
    ("max_dead_names", -1), ("max_dead_names", 2.5),
])
def test_bad_values_name_setting_and_value(name: str, value: object) -> None:
    """Each bad value raises ValueError naming the setting and echoing the value; nothing is applied."""
    before = _config.CONFIG.as_dict()
    with pytest.raises(ValueError, match=name) as info:
        tracedthreading.configure(**{name: value})
    assert repr(value).strip("[]")[:10] in str(info.value)
    assert _config.CONFIG.as_dict() == before


def test_unknown_setting_is_a_type_error() -> None:
    """A misspelt setting is refused with the list of known ones."""
    with pytest.raises(TypeError, match="contended_threshold"):
        tracedthreading.configure(contended_treshold=1)


def test_configure_returns_previous_and_none_disables() -> None:
    """configure() returns the previous values; None turns a threshold off."""
    previous = tracedthreading.configure(held_long_threshold=None, stack_depth="8")
    assert previous == {"held_long_threshold": 1.0, "stack_depth": 16}
    assert _config.CONFIG.held_long_threshold is None and _config.CONFIG.stack_depth == 8


def test_load_env_applies_and_validates() -> None:
    """TRACEDTHREADING_* variables are applied; a bad one names the variable."""
    applied = _config.load_env({"TRACEDTHREADING_CONTENDED_THRESHOLD": "0.5", "TRACEDTHREADING_ORDER": "off"})
    assert applied == {"contended_threshold": 0.5, "order": False}
    with pytest.raises(ValueError, match="TRACEDTHREADING_STACK_DEPTH"):
        _config.load_env({"TRACEDTHREADING_STACK_DEPTH": "-2"})
    assert _config.load_env({"TRACEDTHREADING_MAX_DEAD_NAMES": "250"}) == {"max_dead_names": 250}
    assert _config.CONFIG.max_dead_names == 250


def test_bad_environment_fails_at_import() -> None:
    """A bad variable makes the import fail with a ValueError naming it (checked in a subprocess)."""
    env = {**os.environ, "TRACEDTHREADING_CONTENDED_THRESHOLD": "-1"}
    proc = subprocess.run([sys.executable, "-c", "import tracedthreading"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode != 0
    assert "ValueError: TRACEDTHREADING_CONTENDED_THRESHOLD must be a non-negative number" in proc.stderr


def test_disabled_by_environment() -> None:
    """TRACEDTHREADING_ENABLED=0 gives the raw stdlib primitives from the start."""
    env = {**os.environ, "TRACEDTHREADING_ENABLED": "0"}
    code = "import _thread, tracedthreading as t; print(type(t.Lock()) is _thread.LockType)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.stdout.strip() == "True", proc.stderr


def test_trace_setting_starts_and_writes_the_timeline(tmp_path: object) -> None:
    """configure(trace=path) records a timeline; configure(trace=None) stops and writes it as JSON."""
    import json

    path = tmp_path / "trace.json"  # type: ignore[operator]
    tracedthreading.configure(trace=str(path))
    lock = tracedthreading.Lock(name="timed")
    with lock:
        pass
    tracedthreading.configure(trace=None)
    data = json.loads(path.read_text())
    holds = [e for e in data["traceEvents"] if e.get("ph") == "X" and e["name"] == "hold timed"]
    assert len(holds) == 1
    with pytest.raises(ValueError, match="trace"):
        tracedthreading.configure(trace=3)
