"""Reports a person can read: per-lock tables, inversions, deadlocks, event counts, the lock-order graph.

:func:`format_lock_table` is the one table renderer, shared by the runner's ``--summary``, the pytest
plugin's terminal summary and ``python -m tracedthreading report`` (:func:`main`), which reads a JSON-lines
event log written by the runner. The log's last ``tracedthreading.summary`` event supplies the figures;
without one, the report is built from the individual events and says so. ``--graph`` writes the
lock-order graph as Graphviz DOT (rendered with ``dot`` for ``.svg``/``.png``/``.pdf``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracedthreading import _events, _stats
from tracedthreading.snapshot import (
    DeadlockReport,
    Inversion,
    JSONNumberError,
    LockStats,
    OrderEdge,
    Snapshot,
    inversion_from_dict,
    strict_json_loads,
)

__all__ = ["LogData", "ReportError", "format_lock_table", "lock_order_dot", "main", "read_log"]

_HEADER = (
    "name", "kind", "acq", "contended", "cont%",
    "wait total", "wait max", "wait p50", "wait p99",
    "hold total", "hold max", "hold p50", "hold p99",
)
_FORMATS = ("text", "markdown", "json")
_RENDERED = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
_DOT_SUFFIXES = (".dot", ".gv")


class ReportError(Exception):
    """A problem with the user's input or output path; :func:`main` prints it on one line and exits 2."""


# -- the lock table -------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """A duration in the unit that keeps it readable: ns, us, ms or s (``0`` for nothing)."""
    if seconds <= 0:
        return "0"
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f}ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f}us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f}ms"
    return f"{seconds:.3f}s"


def _quantile(hist: Sequence[int], fraction: float, fallback: float, ceiling: float) -> float:
    """A percentile from a log2 histogram (``_stats.percentile``), never above the observed maximum."""
    value = _stats.percentile(list(hist), fraction) if hist else fallback
    return min(value, ceiling) if ceiling > 0 else value


def lock_row(stats: LockStats) -> dict[str, Any]:
    """One table row as numbers (seconds): what every format of :func:`format_lock_table` shows."""
    return {
        "name": stats.label,
        "kind": stats.kind,
        "acq": stats.acquisitions,
        "contended": stats.contentions,
        "cont%": round(100 * stats.contention_ratio, 1),
        "wait total": stats.wait_total,
        "wait max": stats.wait_max,
        "wait p50": _quantile(stats.wait_hist, 0.50, stats.wait_p50, stats.wait_max),
        "wait p99": _quantile(stats.wait_hist, 0.99, stats.wait_p99, stats.wait_max),
        "hold total": stats.hold_total,
        "hold max": stats.hold_max,
        "hold p50": _quantile(stats.hold_hist, 0.50, stats.hold_p50, stats.hold_max),
        "hold p99": _quantile(stats.hold_hist, 0.99, stats.hold_p99, stats.hold_max),
    }


_ORDERS = {
    "wait": lambda s: (s.wait_total, s.contentions, s.hold_total),
    "hold": lambda s: (s.hold_max, s.hold_total),
}


def top_locks(locks: Iterable[LockStats], top: int, order: str | None = "wait") -> list[LockStats]:
    """The first ``top`` primitives: most waited on ("wait"), longest held ("hold"), or as given (None)."""
    if order is None:
        return list(locks)[:top]
    if order not in _ORDERS:
        msg = f"order must be 'wait', 'hold' or None, got {order!r}"
        raise ValueError(msg)
    return sorted(locks, key=_ORDERS[order], reverse=True)[:top]


def format_lock_table(
    locks: Sequence[LockStats], top: int = 10, fmt: str = "text", *, order: str | None = "wait",
) -> str:
    """The ``top`` primitives as a table; ``fmt`` is "text", "markdown" or "json".

    Columns: acquisitions, contentions, contention %, total/max/p50/p99 of wait and of hold times. Rows
    are the most waited on first (``order="wait"``), the longest held (``"hold"``), or as given (None).
    """
    if fmt not in _FORMATS:
        msg = f"fmt must be one of {', '.join(map(repr, _FORMATS))}, got {fmt!r}"
        raise ValueError(msg)
    rows = [lock_row(stats) for stats in top_locks(locks, top, order)]
    if fmt == "json":
        return json.dumps(rows, indent=1)
    body = [
        tuple(cell if isinstance(cell, str) else _cell(key, cell) for key, cell in row.items())
        for row in rows
    ]
    if fmt == "markdown":
        lines = ["| " + " | ".join(_HEADER) + " |", "|" + "|".join("---" for _ in _HEADER) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(_HEADER)]
    # Names and kinds read left-aligned, figures right-aligned.
    lines = ["  ".join(_align(h, w, i) for i, (h, w) in enumerate(zip(_HEADER, widths))).rstrip()]
    lines += ["  ".join(_align(c, w, i) for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in body]
    return "\n".join(lines)


def _cell(key: str, value: float) -> str:
    if key in ("acq", "contended"):
        return f"{value:,}"
    if key == "cont%":
        return f"{value:.1f}"
    return duration(value)


def _align(text: str, width: int, column: int) -> str:
    return text.ljust(width) if column < 2 else text.rjust(width)


# -- reading the event log ------------------------------------------------------------------------------


class _Fallback:
    """The figures of a log without a summary, from its individual events, gathered as they are read
    (bounded by the primitives and cycles named, not by the events: a log may be gigabytes)."""

    def __init__(self) -> None:
        self.inversions: dict[tuple[str, ...], Inversion] = {}
        self.deadlocks: list[DeadlockReport] = []
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, record: dict[str, Any]) -> None:
        """Count one event already checked by :func:`_check_record`."""
        name = record["event"]
        if name == _events.LOCK_ORDER_INVERSION:
            inversion = inversion_from_dict({
                "locks": record["cycle"], "edges": record["edges"], "hint": record.get("hint", ""),
                "timed": record.get("timed", False), "context": record.get("context", ""),
            })
            self.inversions.setdefault(inversion.locks, inversion)
            return
        if name == _events.DEADLOCK_DETECTED:
            self.deadlocks.extend(Snapshot.from_dict({"locks": [], "deadlocks": [record]}).deadlocks)
            return
        key = (record["lock"], str(record.get("kind", "?")))
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = {"name": key[0], "kind": key[1], "waits": 0, "wait total": 0.0,
                                    "wait max": 0.0, "timeouts": 0, "long holds": 0, "hold max": 0.0}
        if name == _events.LOCK_HELD_LONG:
            row["long holds"] += 1
            row["hold max"] = max(row["hold max"], float(record.get("hold", 0.0)))
        elif name != _events.LOCK_WAIT_LONG:  # a wait_long is followed by its contended event
            wait = float(record.get("wait", 0.0))
            row["waits"] += 1
            row["wait total"] += wait
            row["wait max"] = max(row["wait max"], wait)
            if record.get("timed_out") or name in (_events.CONDITION_TIMEOUT, _events.EVENT_TIMEOUT):
                row["timeouts"] += 1


@dataclass
class LogData:
    """What :func:`read_log` found in an event log (read as a stream: nothing kept per event)."""

    path: str
    events: int = 0  #: lines that were event objects
    #: event name -> occurrences (summary excluded); names not tracedthreading's past the first
    #: 1,000 are counted together under :data:`OTHER_NAMES`
    counts: Counter[str] = field(default_factory=Counter)
    snapshot: Snapshot | None = None  #: from the last valid summary event
    summary_line: int | None = None
    order_edges: list[OrderEdge] = field(default_factory=list)  #: the summary's ``order_edges``, if any
    skipped: list[tuple[int, str]] = field(default_factory=list)  #: (line, reason) of bad lines (--lenient)
    fallback: _Fallback = field(default_factory=_Fallback)  #: figures from the individual events
    #: (line, reason) of individual events of the wrong shape: bad lines only if there is no summary
    fallback_bad: list[tuple[int, str]] = field(default_factory=list)

    @property
    def from_events(self) -> bool:
        """True when no summary was found and the figures come from the individual events."""
        return self.snapshot is None


_FALLBACK_EVENTS = {
    _events.LOCK_CONTENDED, _events.SEMAPHORE_CONTENDED, _events.LOCK_HELD_LONG, _events.CONDITION_TIMEOUT,
    _events.EVENT_TIMEOUT, _events.LOCK_ORDER_INVERSION, _events.DEADLOCK_DETECTED, _events.LOCK_WAIT_LONG,
}
_OTHER_NAMES_MAX = 1000
#: Where events of names not tracedthreading's are counted past the first 1,000 such names (an
#: application that puts values in its event names would otherwise grow the count per event).
OTHER_NAMES = "(other event names)"


def read_log(path: str, *, lenient: bool = False) -> LogData:
    """Parse a JSON-lines event log line by line; ``ReportError`` names the file and line of the first
    bad line. Memory is bounded by the summary and the primitives named, not by the log's length.

    With ``lenient`` bad lines (and malformed summaries) are skipped and listed in ``LogData.skipped``.
    """
    data = LogData(path=path)

    def bad(number: int, reason: str) -> None:
        if not lenient:
            raise ReportError(f"{path}:{number}: {reason}")
        data.skipped.append((number, reason))

    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed below; opened apart to report open errors cleanly
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReportError(f"{path}: is a directory, not an event log") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read ({exc.strerror or exc})") from None
    lines = 0
    counts = data.counts
    with stream:
        try:
            for number, raw in enumerate(stream, 1):
                lines = number
                if not raw.strip():
                    continue
                record = _parse_line(raw, number, bad)
                if record is None:
                    continue
                data.events += 1
                name = record["event"]
                if name == _events.SUMMARY:
                    try:
                        data.snapshot, data.order_edges = _summary(record)
                    except ReportError as exc:
                        bad(number, f"malformed {_events.SUMMARY} event: {exc}")
                        continue
                    data.summary_line = number
                    continue
                if name in counts or name in _events.SCHEMA or len(counts) < _OTHER_NAMES_MAX:
                    counts[name] += 1
                else:
                    counts[OTHER_NAMES] += 1
                if name in _FALLBACK_EVENTS:
                    try:
                        _check_record(record)
                    except ReportError as exc:
                        data.fallback_bad.append((number, str(exc)))
                        continue
                    data.fallback.add(record)
        except OSError as exc:
            raise ReportError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if lines == 0:
        raise ReportError(f"{path}: empty file, no events to report")
    if data.events == 0:
        why = f"all {len(data.skipped)} non-blank lines are malformed" if data.skipped else "only blank lines"
        raise ReportError(f"{path}: no events to report ({why})")
    if data.snapshot is None:
        for number, reason in data.fallback_bad:
            bad(number, reason)
        data.skipped.sort()
    return data


_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # control bytes no JSON text line holds raw


def _parse_line(raw: bytes, number: int, bad: Any) -> dict[str, Any] | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        bad(number, "not UTF-8 text (is this a binary file?)")
        return None
    if _CONTROL.search(raw) is not None:
        bad(number, "binary data, not a JSON event (is this an event log?)")
        return None
    try:
        record = strict_json_loads(text)
    except JSONNumberError as exc:
        bad(number, str(exc))
        return None
    except json.JSONDecodeError as exc:
        truncated = "; truncated line?" if exc.pos >= len(text.rstrip()) else ""
        bad(number, f"invalid JSON ({exc.msg} at column {exc.colno}{truncated})")
        return None
    except (ValueError, RecursionError) as exc:
        bad(number, f"invalid JSON ({exc.__class__.__name__})")
        return None
    if not isinstance(record, dict):
        bad(number, f"expected one JSON object per line, got {type(record).__name__}")
        return None
    if not isinstance(record.get("event"), str):
        bad(number, 'not an event: no "event" name')
        return None
    if "\\ud" in text.lower():  # an escaped surrogate: fine in a pair, not alone (it cannot be printed)
        try:
            json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            bad(number, "a string holds a lone surrogate (\\udXXX escape), which is not text")
            return None
    return record


def _need(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    """Check one field's JSON type, with a message naming the field."""
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        ok = False
    else:
        ok = isinstance(value, kind)
    if not ok:
        names = {list: "a list", dict: "an object", str: "a string", int: "an integer", bool: "true/false"}
        wanted = names.get(kind, "a number") if isinstance(kind, type) else "a number"
        raise ReportError(f"{where} must be {wanted}, got {json.dumps(value)[:60]}")
    return value


def _strings(value: Any, where: str) -> list[str]:
    for item in _need(value, list, where):
        _need(item, str, f"{where} entries")
    return value  # type: ignore[no-any-return]


def _check_edge(item: Any, where: str, *, full: bool = False) -> None:
    """An order edge's shape; ``full``: an inversion's edge, which carries every field."""
    _need(item, dict, where)
    for key in ("src", "dst"):
        _need(item.get(key), str, f"{where}.{key}")
    if full:
        _need(item.get("count"), int, f"{where}.count")
        _need(item.get("thread"), str, f"{where}.thread")
        _need(item.get("thread_id"), int, f"{where}.thread_id")
        _strings(item.get("stack"), f"{where}.stack")
    if "count" in item:
        _need(item["count"], int, f"{where}.count")
    if "thread" in item:
        _need(item["thread"], str, f"{where}.thread")
    if "thread_id" in item:
        _need(item["thread_id"], int, f"{where}.thread_id")
    if "stack" in item:
        _strings(item["stack"], f"{where}.stack")


def _check_inversion(item: Any, where: str, cycle_key: str = "locks") -> None:
    _need(item, dict, where)
    if not _strings(item.get(cycle_key), f"{where}.{cycle_key}"):
        raise ReportError(f"{where}.{cycle_key} must name at least one lock")
    if not _need(item.get("edges"), list, f"{where}.edges"):
        raise ReportError(f"{where}.edges must list at least one edge")
    for index, edge in enumerate(item["edges"]):
        _check_edge(edge, f"{where}.edges[{index}]", full=True)
    if "hint" in item:
        _need(item["hint"], str, f"{where}.hint")


def _check_deadlock(item: Any, where: str) -> None:
    _need(item, dict, where)
    for index, thread in enumerate(_need(item.get("threads"), list, f"{where}.threads")):
        spot = f"{where}.threads[{index}]"
        _need(thread, dict, spot)
        _need(thread.get("thread"), str, f"{spot}.thread")
        _need(thread.get("thread_id"), int, f"{spot}.thread_id")
        _strings(thread.get("holds"), f"{spot}.holds")
        _need(thread.get("waits_for"), str, f"{spot}.waits_for")
        _strings(thread.get("stack", []), f"{spot}.stack")


def _summary(record: dict[str, Any]) -> tuple[Snapshot, list[OrderEdge]]:
    """The snapshot and order edges of one summary event; ``ReportError`` says what is wrong."""
    locks = _need(record.get("locks"), list, "locks")
    for index, item in enumerate(locks):
        _need(item, dict, f"locks[{index}]")
    inversions = _need(record.get("inversions", []), list, "inversions")
    for index, item in enumerate(inversions):
        _check_inversion(item, f"inversions[{index}]")
    deadlocks = _need(record.get("deadlocks", []), list, "deadlocks")
    for index, item in enumerate(deadlocks):
        _check_deadlock(item, f"deadlocks[{index}]")
    raw_edges = _need(record.get("order_edges", []), list, "order_edges")
    for index, item in enumerate(raw_edges):
        _check_edge(item, f"order_edges[{index}]")
    try:
        snap = Snapshot.from_dict({"locks": locks, "inversions": inversions, "deadlocks": deadlocks})
    except KeyError as exc:
        raise ReportError(f"missing field {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ReportError(str(exc)) from None
    return snap, [_order_edge(item) for item in raw_edges]


def _order_edge(item: dict[str, Any]) -> OrderEdge:
    return OrderEdge(
        src=item["src"], dst=item["dst"], count=int(item.get("count", 1)), thread=str(item.get("thread", "")),
        thread_id=int(item.get("thread_id", 0)), stack=tuple(item.get("stack", ())),
        timed=bool(item.get("timed", False)),
    )


def _check_record(record: dict[str, Any]) -> None:
    """Without a summary the individual events are used: ``ReportError`` for one of the wrong shape."""
    name = record["event"]
    if name == _events.LOCK_ORDER_INVERSION:
        _check_inversion(record, name, cycle_key="cycle")
    elif name == _events.DEADLOCK_DETECTED:
        _check_deadlock(record, name)
    else:
        _need(record.get("lock"), str, f"{name}.lock")
        for key in ("wait", "hold"):
            if key in record:
                _need(record[key], (int, float), f"{name}.{key}")


# -- what the report shows ------------------------------------------------------------------------------


@dataclass
class _Findings:
    locks: list[LockStats]
    inversions: list[Inversion]
    deadlocks: list[DeadlockReport]
    threshold_rows: list[dict[str, Any]]  # only without a summary: per-lock figures from threshold events


def _findings(data: LogData) -> _Findings:
    if data.snapshot is not None:
        snap = data.snapshot
        return _Findings(list(snap.locks), list(snap.inversions), list(snap.deadlocks), [])
    found = data.fallback
    ordered = sorted(found.rows.values(), key=lambda r: (r["wait total"], r["hold max"]), reverse=True)
    return _Findings([], list(found.inversions.values()), list(found.deadlocks), ordered)


def _threshold_table(rows: list[dict[str, Any]], fmt: str) -> str:
    header = ("name", "kind", "slow waits", "timeouts", "wait total", "wait max", "long holds", "hold max")
    body = [
        (r["name"], r["kind"], str(r["waits"]), str(r["timeouts"]), duration(r["wait total"]),
         duration(r["wait max"]), str(r["long holds"]), duration(r["hold max"]))
        for r in rows
    ]
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(_align(h, w, i) for i, (h, w) in enumerate(zip(header, widths))).rstrip()]
    lines += ["  ".join(_align(c, w, i) for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in body]
    return "\n".join(lines)


def _skipped_note(data: LogData) -> str:
    shown = ", ".join(str(number) for number, _reason in data.skipped[:10])
    more = f" and {len(data.skipped) - 10} more" if len(data.skipped) > 10 else ""
    first = data.skipped[0][1]
    return f"skipped {len(data.skipped)} bad line{'s' if len(data.skipped) != 1 else ''} ({shown}{more}; first: {first})"


def render(data: LogData, *, top: int = 10, fmt: str = "text") -> str:
    """The whole report of one log, in ``fmt`` ("text", "markdown" or "json")."""
    found = _findings(data)
    if fmt == "json":
        return json.dumps({
            "file": data.path,
            "events": data.events,
            "source": "events" if data.from_events else "summary",
            "summary_line": data.summary_line,
            "locks_total": len(found.locks),
            "locks": json.loads(format_lock_table(found.locks, top, "json")),
            "threshold_events": found.threshold_rows[:top],
            "inversions": [inversion.as_dict() for inversion in found.inversions],
            "deadlocks": [deadlock.as_dict() for deadlock in found.deadlocks],
            "event_counts": dict(sorted(data.counts.items())),
            "skipped_lines": [{"line": number, "reason": reason} for number, reason in data.skipped],
        }, indent=1)
    md = fmt == "markdown"
    out: list[str] = []

    def heading(text: str) -> None:
        out.append(f"\n## {text}\n" if md else f"\n{text}")

    def block(text: str) -> None:
        out.append(f"```\n{text}\n```" if md else text)

    title = f"tracedthreading report: {data.path} ({data.events:,} events"
    title += f", summary at line {data.summary_line})" if data.summary_line else ")"
    out.append(f"# {title}" if md else title)
    if data.skipped:
        out.append(_skipped_note(data))
    if data.from_events:
        out.append(
            f"note: no {_events.SUMMARY} event in the log (did the run end early?); the figures below come "
            "from the individual events, which are only emitted past the thresholds"
        )
        heading(f"Primitives with threshold events: {len(found.threshold_rows)}"
                + (f", top {top}" if len(found.threshold_rows) > top else ""))
        if found.threshold_rows:
            out.append(_threshold_table(found.threshold_rows[:top], fmt))
    else:
        shown = min(top, len(found.locks))
        heading(f"Primitives: {len(found.locks)}" + (f", top {shown} by wait time" if shown < len(found.locks) else ""))
        if found.locks:
            out.append(format_lock_table(found.locks, top, fmt))
    heading(f"Lock-order inversions: {len(found.inversions) or 'none'}")
    for inversion in found.inversions:
        block(str(inversion))
    heading(f"Deadlocks: {len(found.deadlocks) or 'none'}")
    for deadlock in found.deadlocks:
        block(str(deadlock))
    ours = {name: count for name, count in data.counts.items() if name in _events.SCHEMA}
    others = sum(data.counts.values()) - sum(ours.values())
    heading("Events in the log: " + ("none besides the summary" if not ours else f"{sum(ours.values()):,}"))
    if ours:
        width = max(map(len, ours))
        for name, count in sorted(ours.items(), key=lambda item: (-item[1], item[0])):
            level = _events.SCHEMA[name][0]
            out.append(f"- `{name}`: {count:,} ({level})" if md else f"  {name.ljust(width)}  {count:>7,}  {level}")
    if others:
        out.append(f"({others:,} other events, not tracedthreading's)")
    return "\n".join(out).lstrip("\n")


# -- the lock-order graph -------------------------------------------------------------------------------


def _quote(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _short_frame(frame: str) -> str:
    """``/long/path/file.py:12 in func`` as ``file.py:12 in func``."""
    location, sep, rest = frame.partition(" in ")
    return os.path.basename(location) + sep + rest


def lock_order_dot(
    inversions: Sequence[Inversion], order_edges: Sequence[OrderEdge] = (), locks: Sequence[LockStats] = (),
    *, title: str = "lock-order graph",
) -> str:
    """Graphviz DOT of the lock-order graph: every edge with its count and witness thread, inversions red.

    The edges are ``order_edges`` (the whole graph, when the log has it) plus every inversion's edges.
    """
    kinds = {stats.name: stats.kind for stats in locks}
    edges: dict[tuple[str, str], OrderEdge] = {(e.src, e.dst): e for e in order_edges}
    hot: set[tuple[str, str]] = set()
    for inversion in inversions:
        for edge in inversion.edges:
            pair = (edge.src, edge.dst)
            known = edges.get(pair)
            if known is None or edge.count >= known.count:
                edges[pair] = edge
            hot.add(pair)
    hot_nodes = {name for pair in hot for name in pair}
    nodes: dict[str, bool] = {}
    for src, dst in edges:
        for name in (src, dst):
            if name not in nodes:
                nodes[name] = name in hot_nodes
    lines = [
        "digraph lock_order {",
        # nodesep/ranksep: room for the labels of the two edges of a 2-cycle, side by side.
        f"  graph [label={_quote(title)}, labelloc=t, fontname=Helvetica, nodesep=0.8, ranksep=0.7];",
        "  node [shape=box, style=rounded, fontname=Helvetica];",
        "  edge [fontname=Helvetica, fontsize=10];",
    ]
    if not nodes:
        lines.append('  empty [shape=plaintext, label="no lock-order edges recorded"];')
    for name, in_cycle in sorted(nodes.items()):
        label = name + (f"\n({kinds[name]})" if name in kinds else "")
        style = ", color=red, fontcolor=red, penwidth=2" if in_cycle else ""
        lines.append(f"  {_quote(name)} [label={_quote(label)}{style}];")
    for (src, dst), edge in sorted(edges.items()):
        label = f"{edge.count:,}x"
        if edge.thread:
            label += f"\nfirst: {edge.thread}"
        if (src, dst) in hot:
            if edge.stack:
                label += f"\nat {_short_frame(edge.stack[-1])}"
            style = ", color=red, fontcolor=red, penwidth=2.5, style=bold"
        else:
            style = ""
        lines.append(f"  {_quote(src)} -> {_quote(dst)} [label={_quote(label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_graph(data: LogData, out: str) -> str:
    """Write the graph to ``out`` (``.dot``/``.gv``, or ``.svg``/``.png``/``.pdf`` through Graphviz).

    Returns a line saying what was written; ``ReportError`` when ``dot`` is missing or fails (the
    ``.dot`` file is written next to ``out`` first, so it can be rendered elsewhere).
    """
    root, suffix = os.path.splitext(out)
    suffix = suffix.lower()
    found = _findings(data)
    text = lock_order_dot(found.inversions, data.order_edges, found.locks, title=f"lock-order graph: {data.path}")
    dot_path = out if suffix in _DOT_SUFFIXES else root + ".dot"
    try:
        with open(dot_path, "w", encoding="utf-8") as stream:
            stream.write(text)
    except OSError as exc:
        raise ReportError(f"{dot_path}: cannot write the graph ({exc.strerror or exc})") from None
    if suffix in _DOT_SUFFIXES:
        return f"wrote {dot_path}"
    import shutil  # only here: the table renderers are imported by --summary and the pytest plugin
    import subprocess

    program = shutil.which("dot")
    if program is None:
        raise ReportError(
            f"cannot render {out}: Graphviz's 'dot' program is not installed (e.g. apt-get install graphviz); "
            f"wrote {dot_path}, render it later with: dot -T{_RENDERED[suffix]} {dot_path} -o {out}"
        )
    try:
        done = subprocess.run(
            [program, f"-T{_RENDERED[suffix]}", dot_path, "-o", out],
            capture_output=True, text=True, timeout=120, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReportError(f"cannot render {out}: running dot failed ({exc})") from None
    if done.returncode != 0:
        detail = " ".join(done.stderr.split())[:300] or f"exit status {done.returncode}"
        raise ReportError(f"cannot render {out}: dot failed: {detail} (the DOT source is in {dot_path})")
    return f"wrote {dot_path} and {out}"


# -- the command ----------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        msg = f"must be a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tracedthreading report",
        description="Summarise a JSON-lines event log written by `python -m tracedthreading --log-file`.",
    )
    parser.add_argument("log", metavar="EVENTS.jsonl", help="the event log (one JSON event per line)")
    parser.add_argument("--top", type=_positive, default=10, metavar="N", help="primitives to list (default 10)")
    parser.add_argument("--format", choices=_FORMATS, default="text", help="output format (default text)")
    parser.add_argument("--lenient", action="store_true", help="skip malformed lines instead of failing")
    parser.add_argument(
        "--graph", metavar="OUT",
        help="write the lock-order graph: OUT.dot/.gv (Graphviz DOT), or .svg/.png/.pdf rendered with dot",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """``report EVENTS.jsonl [--top N] [--format text|json|markdown] [--lenient] [--graph OUT]``.

    Exit status: 0 on success, 2 for a usage error, unreadable or malformed input, or a graph not rendered.
    """
    parser = _parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse has printed the usage error (or --help)
        return exc.code if isinstance(exc.code, int) else 2
    if args.graph is not None:
        suffix = os.path.splitext(args.graph)[1].lower()
        if suffix not in _DOT_SUFFIXES and suffix not in _RENDERED:
            print(f"tracedthreading report: error: --graph {args.graph}: the name must end in .dot, .gv, "
                  ".svg, .png or .pdf", file=sys.stderr)
            return 2
    graph_error = None
    try:
        data = read_log(args.log, lenient=args.lenient)
        text = render(data, top=args.top, fmt=args.format)
        if args.graph is not None:
            try:
                wrote = write_graph(data, args.graph)
            except ReportError as exc:
                graph_error, wrote = exc, ""
    except ReportError as exc:
        print(f"tracedthreading report: error: {exc}", file=sys.stderr)
        return 2
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `report ... | head`: the reader has gone, which is no error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    if graph_error is not None:
        print(f"tracedthreading report: error: {graph_error}", file=sys.stderr)
        return 2
    if args.graph is not None:
        print(wrote, file=sys.stderr)
    return 0
