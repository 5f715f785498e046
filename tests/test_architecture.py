"""Architecture (issue #14, item 5): no import cycles between tracedthreading's modules.

Two checks. A static scan (``ast``) of every module of ``src/tracedthreading``, imports inside functions
included, builds the graph of imports between the package's modules and must find no cycle. And every
module imports alone in a fresh interpreter, with the C extension and with ``TRACEDTHREADING_PURE_PYTHON``.

In the graph the package's ``__init__`` is a node like the others: it sits on top, importing the
submodules, and a submodule that imports the package itself (``import tracedthreading``, ``from
tracedthreading import <a name that is not a submodule>``) has an edge to it. Only the entry points may
do that, and nothing but an entry point imports them: both premises are checked, not assumed.
"""

from __future__ import annotations

import ast
import importlib.machinery
import os
import subprocess
import sys
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

import tracedthreading

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "tracedthreading"
PACKAGE_DIR = SRC / PACKAGE
INIT = "__init__"
# Run by ``python -m``, the console or pytest, never imported by the package: they may import it.
ENTRY_POINTS = frozenset({"__main__", "_cli", "pytest_plugin"})
Graph = Mapping[str, Mapping[str, Iterable[str]]]  # module -> imported module -> where ("12", "34 lazy")


class Import(NamedTuple):
    """One import of a package module: the graph node it reaches, its line, whether in a function."""

    target: str
    line: int
    lazy: bool


def submodule_names(package_dir: Path = PACKAGE_DIR) -> frozenset[str]:
    """The package's submodules: its ``.py`` files but ``__init__``, and its C extensions (built or not)."""
    names = {path.stem for path in package_dir.glob("*.py") if path.stem != INIT}
    names |= {path.stem for path in package_dir.glob("*.c")}  # the source of an extension not built here
    return frozenset(names | built_extensions(package_dir))


def built_extensions(package_dir: Path = PACKAGE_DIR) -> frozenset[str]:
    """The submodules built as extension modules this interpreter can load."""
    return frozenset(
        path.name[: -len(suffix)]
        for path in package_dir.iterdir()
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if path.name.endswith(suffix) and path.name[: -len(suffix)].isidentifier()  # ".so" alone: not a name
    )


def _node(dotted: str, submodules: frozenset[str]) -> str | None:
    """The graph node that importing module ``dotted`` reaches: a submodule, ``__init__``, None if not ours."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return None
    return parts[1] if len(parts) > 1 and parts[1] in submodules else INIT


def imports_of(source: str, submodules: frozenset[str], filename: str = "<source>") -> list[Import]:
    """Every import of a package module in ``source``, at any depth (lazy ones in functions too).

    ``from tracedthreading import x`` reaches the submodule ``x`` when there is one, else ``__init__``
    (a name the package defines); relative imports resolve against the package; ``import_module`` and
    ``__import__`` calls with a literal name count as well.
    """
    tree = ast.parse(source, filename)
    lazy = {
        id(inner)
        for outer in ast.walk(tree)
        if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for inner in ast.walk(outer)
    }
    found: list[Import] = []
    for node in ast.walk(tree):
        targets: list[str | None] = []
        if isinstance(node, ast.Import):
            targets = [_node(alias.name, submodules) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1:
                continue  # above the top-level package: an ImportError, not an edge
            base = ".".join(filter(None, (PACKAGE if node.level else "", node.module or "")))
            if base == PACKAGE:
                targets = [alias.name if alias.name in submodules else INIT for alias in node.names]
            else:
                targets = [_node(base, submodules)]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if function in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                targets = [_node(node.args[0].value, submodules)]
        found.extend(Import(target, node.lineno, id(node) in lazy) for target in targets if target is not None)
    return found


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, dict[str, list[str]]]:
    """module -> {imported module -> the lines importing it}, for every ``.py`` module of the package."""
    submodules = submodule_names(package_dir)
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(package_dir.glob("*.py")):
        edges = graph.setdefault(path.stem, {})
        for found in imports_of(path.read_text(encoding="utf-8"), submodules, str(path)):
            if found.target != path.stem:
                edges.setdefault(found.target, []).append(f"{found.line}{' lazy' if found.lazy else ''}")
    return graph


def find_cycles(graph: Graph, limit: int = 50) -> list[tuple[str, ...]]:
    """The elementary cycles of ``graph`` (at most ``limit``), each starting at its smallest node."""
    nodes = sorted(set(graph).union(*graph.values()))
    callers: dict[str, set[str]] = {node: set() for node in nodes}
    for source, targets in graph.items():
        for target in targets:
            callers[target].add(source)
    cycles: list[tuple[str, ...]] = []
    for start in nodes:
        # Walk only nodes after ``start`` that lead back to it: each cycle is found once, from its smallest node.
        back, todo = {start}, [start]
        while todo:
            for caller in callers[todo.pop()]:
                if caller > start and caller not in back:
                    back.add(caller)
                    todo.append(caller)
        paths = [(start,)]
        while paths and len(cycles) < limit:
            path = paths.pop()
            for target in sorted(graph.get(path[-1], ()), reverse=True):
                if target == start:
                    cycles.append(path)
                elif target in back and target not in path:
                    paths.append((*path, target))
    return sorted(cycles[:limit], key=lambda cycle: (len(cycle), cycle))


def describe_cycle(cycle: tuple[str, ...], graph: Graph) -> str:
    """``a -> b -> a``, then where each module imports the next (``a.py:12``, ``lazy`` inside a function)."""
    hops = zip(cycle, (*cycle[1:], cycle[0]))
    sites = "; ".join(f"{source}.py:{', '.join(graph[source][target])} imports {target}" for source, target in hops)
    return f"{' -> '.join((*cycle, cycle[0]))}    ({sites})"


# -- the scan ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import tracedthreading._stats", [Import("_stats", 1, False)]),
        ("import tracedthreading._stats as stats", [Import("_stats", 1, False)]),
        ("from tracedthreading import _stats", [Import("_stats", 1, False)]),
        ("from tracedthreading import _stats as stats", [Import("_stats", 1, False)]),
        ("from tracedthreading._stats import collect", [Import("_stats", 1, False)]),
        ("from . import _stats", [Import("_stats", 1, False)]),
        ("from ._stats import collect", [Import("_stats", 1, False)]),
        ("import tracedthreading", [Import(INIT, 1, False)]),
        ("from tracedthreading import Lock", [Import(INIT, 1, False)]),
        ("from . import Lock", [Import(INIT, 1, False)]),
        ("from tracedthreading import Lock, _stats", [Import(INIT, 1, False), Import("_stats", 1, False)]),
        ("def f():\n    from tracedthreading import _stats", [Import("_stats", 2, True)]),
        ("importlib.import_module('tracedthreading._stats')", [Import("_stats", 1, False)]),
        ("import threading, tracedthreadingx\nfrom .. import x\nfrom threading import Lock", []),
    ],
)
def test_scan_resolves_every_import_form(source: str, expected: list[Import]) -> None:
    """Each way of importing a package module gives its edge (``__init__`` for the package's own names)."""
    assert imports_of(source, frozenset({"_stats"})) == expected


def test_find_cycles_reports_each_elementary_cycle_once() -> None:
    """Cycles come back once each, from their smallest node, shortest first; acyclic parts give none."""
    graph = {"a": {"b": ["1"]}, "b": {"c": ["1"], "a": ["2"]}, "c": {"a": ["3"]}, "d": {"a": ["4"]}}
    assert find_cycles(graph) == [("a", "b"), ("a", "b", "c")]
    assert describe_cycle(("a", "b"), graph) == "a -> b -> a    (a.py:1 imports b; b.py:2 imports a)"
    assert find_cycles({"a": {"b": ["1"]}, "b": {"c": ["1"]}, "d": {"b": ["1"]}}) == []


def test_scan_sees_every_module_and_the_package_on_top() -> None:
    """Every ``.py`` module is in the graph, and ``__init__`` imports the submodules below it."""
    graph = import_graph()
    assert set(graph) == {path.stem for path in PACKAGE_DIR.glob("*.py")}
    assert {"_lockorder", "_deadlock", "snapshot", "_stats"} <= set(graph[INIT])


def test_no_import_cycles() -> None:
    """The graph of imports between the package's modules, lazy ones included, has no cycle."""
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles between tracedthreading modules:\n" + "\n".join(
        describe_cycle(cycle, graph) for cycle in cycles
    )


def test_only_entry_points_import_the_package_itself() -> None:
    """Below ``__init__``, only the entry points import the package (``import tracedthreading``)."""
    graph = import_graph()
    importers = {module for module, targets in graph.items() if INIT in targets}
    assert importers <= ENTRY_POINTS, {module: graph[module][INIT] for module in importers - ENTRY_POINTS}


def test_entry_points_are_imported_only_by_entry_points() -> None:
    """Nothing in the package imports an entry point (``__main__`` runs ``_cli``), so they sit on top."""
    graph = import_graph()
    for entry in ENTRY_POINTS:
        importers = {module for module, targets in graph.items() if entry in targets}
        assert importers <= ENTRY_POINTS, f"{entry} is imported by {sorted(importers - ENTRY_POINTS)}"


def test_no_module_imports_a_submodule_the_package_shadows() -> None:
    """A submodule whose name the package binds to something else (``tracedthreading.snapshot`` is the
    function) is never imported as ``from tracedthreading import <name>``: that gives the package's object."""
    shadowed = {
        name
        for name in submodule_names()
        if not isinstance(getattr(tracedthreading, name, types.ModuleType(name)), types.ModuleType)
    }
    assert "snapshot" in shadowed
    offenders = []
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level <= 1:
                base = ".".join(filter(None, (PACKAGE if node.level else "", node.module or "")))
                names = [alias.name for alias in node.names] if base == PACKAGE else []
            elif isinstance(node, ast.Import):  # ``import tracedthreading.x as y`` binds getattr(package, "x")
                names = [alias.name.split(".", 1)[1] for alias in node.names if alias.asname and "." in alias.name]
            else:
                continue
            offenders += [f"{path.name}:{node.lineno} {name}" for name in names if name in shadowed]
    assert not offenders


def test_snapshot_names_keep_their_meaning() -> None:
    """``tracedthreading.snapshot`` is the collecting function; the module of value objects is still
    importable by its path, and ``from tracedthreading.snapshot import snapshot`` gives that same function."""
    from tracedthreading.snapshot import Snapshot, snapshot

    module = sys.modules["tracedthreading.snapshot"]
    assert isinstance(module, types.ModuleType) and callable(tracedthreading.snapshot)
    assert snapshot is tracedthreading.snapshot is module.snapshot
    assert set(module.__all__) <= set(vars(module))
    assert isinstance(tracedthreading.snapshot(), Snapshot) and tracedthreading.Snapshot is Snapshot


# -- each module alone, in a fresh interpreter ---------------------------------------------------------

MODULES = [PACKAGE] + [
    f"{PACKAGE}.{name}" for name in sorted({p.stem for p in PACKAGE_DIR.glob("*.py")} - {INIT} | built_extensions())
]
IMPORT_ALONE = """\
import sys
try:
    import {module}
except SystemExit as exit:  # __main__ runs the command line (given ``--version``)
    if exit.code:
        raise
if {pure!r}:
    assert "tracedthreading._speedups" not in sys.modules, "pure-Python mode imported the C extension"
"""


@pytest.mark.parametrize(("module", "pure"), [
    pytest.param(module, pure, id=f"{module}-{'pure-python' if pure else 'default'}")
    for module in MODULES for pure in (False, True)
    if not (pure and module == f"{PACKAGE}._speedups")  # the pure path never imports the extension
])
def test_each_module_imports_alone(module: str, pure: bool) -> None:
    """``import <module>`` succeeds in a fresh interpreter; with ``TRACEDTHREADING_PURE_PYTHON=1`` it
    loads no ``_speedups`` (which is itself not imported then)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRACEDTHREADING_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(SRC), os.environ.get("PYTHONPATH"))))
    if pure:
        env["TRACEDTHREADING_PURE_PYTHON"] = "1"
    argv = ["--version"] if module.endswith(".__main__") else []
    code = IMPORT_ALONE.format(module=module, pure=pure)
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
