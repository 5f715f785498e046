"""Sphinx glue for the generated parts of the docs (the generating itself is in ``ttgen.py``).

Directives:

``.. tt-run::`` with one command per content line
    runs them at build time (see :func:`ttgen.run_commands`) and shows the transcript. Options:
    ``:stderr: merge|hide``, ``:returncode: N`` (of the last command), ``:quiet:`` (only the last
    command's output), ``:timeout: SECONDS``. A command that fails is a build error.
``.. tt-events::``
    the event table, from ``tracedthreading._events.SCHEMA``.
``.. tt-settings::``
    the configuration table, from ``tracedthreading._config``.

When the builder starts, the pictures are drawn into ``docs/_generated/`` (:func:`ttgen.generate_pictures`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ttgen  # noqa: E402 - next to this file

logger = logging.getLogger(__name__)


class RunDirective(Directive):
    """Run commands at build time and show what they printed."""

    has_content = True
    option_spec = {
        "stderr": lambda value: directives.choice(value, ("merge", "hide")),
        "returncode": directives.nonnegative_int,
        "quiet": directives.flag,
        "timeout": directives.positive_int,
    }

    def run(self) -> list[nodes.Node]:
        commands = [line.strip() for line in self.content if line.strip()]
        if not commands:
            raise self.error("tt-run needs at least one command")
        try:
            text = ttgen.run_commands(
                commands,
                stderr=self.options.get("stderr", "merge"),
                returncode=self.options.get("returncode", 0),
                quiet="quiet" in self.options,
                timeout=float(self.options.get("timeout", ttgen.TIMEOUT)),
            )
        except (ttgen.CommandError, ValueError) as exc:
            raise self.error(f"tt-run: {exc}") from None
        block = nodes.literal_block(text, text)
        block["language"] = "console"
        return [block]


class _Generated(Directive):
    """Parse reStructuredText lines that a function of :mod:`ttgen` wrote."""

    lines: Any = None

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        source = self.state_machine.input_lines.source(self.lineno - self.state_machine.input_offset - 1)
        self.state.nested_parse(StringList(type(self).lines(), source=source), self.content_offset, container)
        return container.children


class EventsDirective(_Generated):
    """The event schema table."""

    lines = staticmethod(ttgen.event_schema_rst)


class SettingsDirective(_Generated):
    """The configuration table."""

    lines = staticmethod(ttgen.settings_rst)


def _pictures(app: Sphinx) -> None:
    target = Path(app.srcdir) / "_generated"
    try:
        for path in ttgen.generate_pictures(target):
            logger.info("tracedthreading docs: drew %s", path.name)
    except (ttgen.CommandError, ValueError, OSError) as exc:
        raise ExtensionError(f"tracedthreading docs: the pictures could not be drawn: {exc}") from exc


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives and the picture step."""
    app.add_directive("tt-run", RunDirective)
    app.add_directive("tt-events", EventsDirective)
    app.add_directive("tt-settings", SettingsDirective)
    app.connect("builder-inited", _pictures)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
