"""Locks the patch must reach: logging's module lock and handler locks, pytest under the runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def runner(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m tracedthreading ARGS`` in ``cwd`` (bounded)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    env.pop("TRACEDTHREADING_PYTEST", None)
    return subprocess.run([sys.executable, "-m", "tracedthreading", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_pytest_under_the_runner_gives_no_assert_rewrite_warning(tmp_path: Path) -> None:
    """``python -m tracedthreading -m pytest -W error`` runs: the already imported package is not a warning."""
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    result = runner("-m", "pytest", "-W", "error", "-q", "-p", "no:cacheprovider", "test_ok.py", cwd=tmp_path)
    assert "PytestAssertRewriteWarning" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
