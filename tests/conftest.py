"""Shared fixtures: every test starts from empty statistics and the default configuration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tracedthreading
from tracedthreading import _config


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    """Reset statistics, the order graph, reports and settings around each test."""
    saved = _config.CONFIG.as_dict()
    tracedthreading.reset()
    yield
    _config.configure(**saved)
    tracedthreading.reset()
