"""The ``report`` command: tables, inversions, event counts, the DOT graph, and clean errors on bad logs."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tracedthreading import _report, _stats
from tracedthreading.snapshot import LockStats

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# A stand-in for the runner: JSON-lines structlog output to a file, the script, then the summary event.
WRAPPER = """
import runpy, sys
import structlog
log, script = sys.argv[1], sys.argv[2]
out = open(log, "w", encoding="utf-8")
structlog.configure(
    processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso"),
                structlog.processors.JSONRenderer()],
    logger_factory=structlog.WriteLoggerFactory(file=out),
)
import tracedthreading
from tracedthreading import _events
tracedthreading.configure(contended_threshold=0.001, held_long_threshold=0.02)
sys.argv = [script]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    _events.emit(_events.SUMMARY, "info", tracedthreading.snapshot().as_dict())
    out.close()
"""

# Contention forced with the wait-for state (no guessing with sleeps), plus a hold past held_long.
CONTENDED = """
import time
import tracedthreading as threading
from tracedthreading.testing import wait_until_blocked
accounts = threading.Lock(name="accounts")
ledger = threading.RLock(name="ledger")

def transfer():
    with accounts:
        with ledger:
            pass

accounts.acquire()
waiter = threading.Thread(target=transfer, name="waiter")
waiter.start()
wait_until_blocked(waiter, accounts)
time.sleep(0.025)
accounts.release()
waiter.join(30)
"""


def _run(tmp: Path, script: Path, name: str) -> Path:
    wrapper = tmp / "wrapper.py"
    wrapper.write_text(WRAPPER)
    log = tmp / f"{name}.jsonl"
    done = subprocess.run([sys.executable, str(wrapper), str(log), str(script)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return log


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Event logs of real runs: the inversion and dining-philosophers examples, and a contended lock."""
    tmp = tmp_path_factory.mktemp("logs")
    contended = tmp / "contended.py"
    contended.write_text(CONTENDED)
    return {
        "inversion": _run(tmp, EXAMPLES / "transfer_inversion.py", "inversion"),
        "philosophers": _run(tmp, EXAMPLES / "dining_philosophers.py", "philosophers"),
        "contended": _run(tmp, contended, "contended"),
    }


def _summary(log: Path) -> tuple[int, dict]:
    lines = log.read_text().splitlines()
    for number in range(len(lines), 0, -1):
        record = json.loads(lines[number - 1])
        if record["event"] == "tracedthreading.summary":
            return number, record
    raise AssertionError("no summary in the log")


def _report_of(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = _report.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- reports of real runs ------------------------------------------------------------------------------


def test_text_report_of_the_inversion_example(logs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """The example's two account locks, its inversion with both witnesses, and the event counts are shown."""
    code, out, err = _report_of(capsys, logs["inversion"])
    assert code == 0, err
    line, _ = _summary(logs["inversion"])
    assert f"summary at line {line}" in out
    for column in ("acq", "contended", "cont%", "wait total", "wait max", "wait p50", "wait p99", "hold p99"):
        assert column in out
    assert re.search(r"^account A\s+lock\s+2\b", out, re.M)
    assert "Lock-order inversions: 1" in out
    assert "cycle: account A -> account B -> account A" in out or "cycle: account B -> account A -> account B" in out
    assert "first by thread 'teller-1'" in out and "first by thread 'teller-2'" in out
    assert re.search(r"lock\.order_inversion\s+1\s+error", out)
    assert "Deadlocks: none" in out


def test_table_figures_come_from_the_summary(logs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """The JSON report's rows carry the summary's counts and totals, and percentiles from its histograms."""
    code, out, _ = _report_of(capsys, logs["contended"], "--format", "json")
    assert code == 0
    report = json.loads(out)
    _, summary = _summary(logs["contended"])
    by_name = {row["name"]: row for row in report["locks"]}
    for stats in summary["locks"]:
        row = by_name[stats["name"]]
        assert row["acq"] == stats["acquisitions"]
        assert row["contended"] == stats["contentions"]
        assert row["wait total"] == pytest.approx(stats["wait_total"])
        expected_p99 = min(_stats.percentile(stats["wait_hist"], 0.99), stats["wait_max"]) if stats["wait_hist"] else 0
        assert row["wait p99"] == pytest.approx(expected_p99)
    assert by_name["accounts"]["contended"] == 1
    assert report["event_counts"]["lock.contended"] == 1
    assert report["event_counts"]["lock.held_long"] == 1
    assert report["source"] == "summary"


def test_top_limits_the_rows(logs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """``--top 2`` lists the two most-waited-on of the philosophers' ten forks and says how many exist."""
    code, out, _ = _report_of(capsys, logs["philosophers"], "--top", "2")
    assert code == 0
    _, summary = _summary(logs["philosophers"])
    assert f"Primitives: {len(summary['locks'])}, top 2 by wait time" in out
    table = out.split("\n\n")[1].splitlines()
    assert len(table) == 1 + 1 + 2  # heading, column header, two rows
    waits = sorted((s["wait_total"] for s in summary["locks"]), reverse=True)
    assert _report.duration(waits[0]) in table[2]


def test_markdown_report(logs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Markdown output has a pipe table and the inversion in a fenced block."""
    code, out, _ = _report_of(capsys, logs["philosophers"], "--format", "markdown")
    assert code == 0
    assert "| name | kind | acq | contended | cont% | wait total |" in out
    assert "## Lock-order inversions: 1" in out
    assert "```\nPOSSIBLE DEADLOCK" in out


def test_last_summary_wins(logs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With two summaries the later one is reported."""
    _, summary = _summary(logs["contended"])
    later = dict(summary, locks=[dict(summary["locks"][0], name="renamed")])
    log = tmp_path / "two.jsonl"
    log.write_text(logs["contended"].read_text() + json.dumps(later) + "\n")
    code, out, _ = _report_of(capsys, log, "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert [row["name"] for row in report["locks"]] == ["renamed"]
    assert report["summary_line"] == len(log.read_text().splitlines())


def test_without_summary_uses_the_events(logs: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A log cut before its summary still reports the threshold events and the inversion, and says so."""
    kept = [line for line in logs["inversion"].read_text().splitlines()
            if json.loads(line)["event"] != "tracedthreading.summary"]
    kept += [line for line in logs["contended"].read_text().splitlines()
             if json.loads(line)["event"] != "tracedthreading.summary"]
    log = tmp_path / "cut.jsonl"
    log.write_text("\n".join(kept) + "\n")
    code, out, _ = _report_of(capsys, log)
    assert code == 0
    assert "no tracedthreading.summary event" in out
    assert re.search(r"^accounts\s+lock\s+1\s+0\s", out, re.M)  # one slow wait, no timeout
    assert "Lock-order inversions: 1" in out and "account A" in out


# -- the shared table ----------------------------------------------------------------------------------


def test_lock_table_formats_share_columns() -> None:
    """Text, markdown and JSON tables have the same columns, and percentiles never exceed the maximum."""
    hist = [0] * 12
    hist[10] = 99  # 99 waits in [512, 1024) ns
    hist[11] = 1
    stats = LockStats(name="x", kind="lock", acquisitions=100, contentions=100, wait_total=6e-5, wait_max=1.1e-6,
                      wait_hist=tuple(hist))
    text = _report.format_lock_table([stats]).splitlines()[0].split("  ")
    markdown = _report.format_lock_table([stats], fmt="markdown").splitlines()[0]
    row = json.loads(_report.format_lock_table([stats], fmt="json"))[0]
    headers = [cell.strip() for cell in text if cell.strip()]
    assert headers == list(row)
    assert markdown == "| " + " | ".join(headers) + " |"
    assert 512e-9 <= row["wait p50"] < 1024e-9
    assert row["wait p99"] <= stats.wait_max
    with pytest.raises(ValueError, match="fmt must be one of"):
        _report.format_lock_table([stats], fmt="html")


# -- the graph ------------------------------------------------------------------------------------------


def _parse_dot(text: str) -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], dict[str, str]]]:
    """A small DOT reader (statements of ids, attribute lists and ``->``) returning nodes and edges."""
    token = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_][\w.]*|[\d.]+)|(->|[{}\[\];,=]))', re.S)
    tokens: list[tuple[str, str]] = []
    position = 0
    while text[position:].strip():
        match = token.match(text, position)
        assert match, f"bad DOT at {text[position:position + 30]!r}"
        position = match.end()
        if match.group(1) is not None:
            tokens.append(("id", re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), match.group(1))))
        elif match.group(2) is not None:
            tokens.append(("id", match.group(2)))
        else:
            tokens.append(("sym", match.group(3)))
    assert tokens[:3] == [("id", "digraph"), ("id", "lock_order"), ("sym", "{")] and tokens[-1] == ("sym", "}")
    nodes: dict[str, dict[str, str]] = {}
    edges: dict[tuple[str, str], dict[str, str]] = {}
    index = 3
    while tokens[index] != ("sym", "}"):
        ids = [tokens[index][1]]
        index += 1
        while tokens[index] == ("sym", "->"):
            ids.append(tokens[index + 1][1])
            index += 2
        attrs: dict[str, str] = {}
        if tokens[index] == ("sym", "["):
            index += 1
            while tokens[index] != ("sym", "]"):
                attrs[tokens[index][1]] = tokens[index + 2][1]
                index += 3
                if tokens[index] == ("sym", ","):
                    index += 1
            index += 1
        assert tokens[index] == ("sym", ";")
        index += 1
        if len(ids) == 2:
            edges[(ids[0], ids[1])] = attrs
        elif ids[0] not in ("graph", "node", "edge"):
            nodes[ids[0]] = attrs
    return nodes, edges


def test_graph_of_the_philosophers_cycle(logs: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The DOT graph has the five forks of the cycle and its five edges, red and bold, with witness threads."""
    out = tmp_path / "cycle.dot"
    code, _, err = _report_of(capsys, logs["philosophers"], "--graph", out)
    assert code == 0 and f"wrote {out}" in err
    nodes, edges = _parse_dot(out.read_text())
    _, summary = _summary(logs["philosophers"])
    cycle = summary["inversions"][0]["locks"]
    assert set(nodes) == set(cycle)
    assert set(edges) == {(cycle[i], cycle[(i + 1) % len(cycle)]) for i in range(len(cycle))}
    witnesses = {(e["src"], e["dst"]): e["thread"] for e in summary["inversions"][0]["edges"]}
    for pair, attrs in edges.items():
        assert attrs["color"] == "red" and attrs["style"] == "bold"
        assert f"first: {witnesses[pair]}" in attrs["label"]
    assert all(attrs["label"].startswith(name + "\n") for name, attrs in nodes.items())


def test_graph_includes_order_edges(logs: dict[str, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """An ``order_edges`` list in the summary adds the rest of the graph, drawn plainly, with its counts."""
    _, summary = _summary(logs["inversion"])
    summary["order_edges"] = [{"src": "account A", "dst": "audit \"log\" \\ 1", "count": 7, "thread": "auditor",
                               "thread_id": 1, "stack": []}]
    log = tmp_path / "edges.jsonl"
    log.write_text(json.dumps(summary) + "\n")
    out = tmp_path / "edges.gv"
    code, _, _ = _report_of(capsys, log, "--graph", out)
    assert code == 0
    nodes, edges = _parse_dot(out.read_text())
    assert set(nodes) == {"account A", "account B", 'audit "log" \\ 1'}
    plain = edges[("account A", 'audit "log" \\ 1')]
    assert "color" not in plain and plain["label"] == "7x\nfirst: auditor"
    assert edges[("account A", "account B")]["color"] == "red"


def test_graph_without_graphviz(logs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for SVG without ``dot`` installed exits 2 with a clear message, after writing the DOT file."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    code, out, err = _report_of(capsys, logs["inversion"], "--graph", tmp_path / "g.svg")
    assert code == 2
    assert "'dot' program is not installed" in err and str(tmp_path / "g.dot") in err
    assert (tmp_path / "g.dot").read_text().startswith("digraph lock_order {")
    assert not (tmp_path / "g.svg").exists()
    assert "Lock-order inversions: 1" in out  # the report itself was still printed


def test_graph_rendered_through_dot(logs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """For ``.png`` the DOT file is handed to ``dot -Tpng`` (a stand-in ``dot`` records its arguments)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text(f"#!{sys.executable}\nimport sys\nargs = sys.argv[1:]\n"
                    "open(args[args.index('-o') + 1], 'w').write(' '.join(args))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    out = tmp_path / "g.png"
    code, _, err = _report_of(capsys, logs["inversion"], "--graph", out)
    assert code == 0, err
    assert out.read_text() == f"-Tpng {tmp_path / 'g.dot'} -o {out}"


def test_graph_with_unknown_suffix(logs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A graph name Graphviz output cannot be chosen from is refused before anything is written."""
    code, out, err = _report_of(capsys, logs["inversion"], "--graph", tmp_path / "g.jpeg")
    assert code == 2 and "must end in .dot, .gv, .svg, .png or .pdf" in err and out == ""


# -- bad input --------------------------------------------------------------------------------------------


def _bad_logs(logs: dict[str, Path], tmp: Path) -> dict[str, tuple[Path, str]]:
    good = logs["contended"].read_text().splitlines()
    number, summary = _summary(logs["contended"])
    wrong = dict(summary, locks=[dict(summary["locks"][0], acquisitions="x")])
    cases = {
        "truncated": ("\n".join(good)[:-40] + "\n", f":{len(good)}: invalid JSON ("),
        "wrong type": ("\n".join(good[:-1] + [json.dumps(wrong)]) + "\n",
                       f":{number}: malformed tracedthreading.summary event: LockStats.acquisitions must be a number"),
        "wrong shape": (json.dumps(dict(summary, inversions=[{"locks": "ab", "edges": []}])) + "\n",
                        ":1: malformed tracedthreading.summary event: inversions[0].locks must be a list"),
        "not an object": ("[1, 2]\n", ":1: expected one JSON object per line, got list"),
        "no event name": ('{"level": "info"}\n', ':1: not an event: no "event" name'),
        "empty": ("", ": empty file, no events to report"),
        "blank lines": ("\n\n  \n", ": no events to report (only blank lines)"),
    }
    out = {}
    for name, (text, message) in cases.items():
        path = tmp / (name.replace(" ", "_") + ".jsonl")
        path.write_text(text)
        out[name] = (path, message)
    garbage = tmp / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 4)
    out["binary garbage"] = (garbage, ":1: binary data, not a JSON event")
    latin = tmp / "latin1.jsonl"
    latin.write_bytes(b'{"event": "lock.contended"}\n{"event": "caf\xe9"}\n')
    out["not utf-8"] = (latin, ":2: not UTF-8 text")
    out["missing"] = (tmp / "missing.jsonl", ": no such file")
    out["directory"] = (tmp, ": is a directory")
    return out


@pytest.mark.parametrize("case", ["truncated", "wrong type", "wrong shape", "not an object", "no event name", "empty",
                                  "blank lines", "binary garbage", "not utf-8", "missing", "directory"])
def test_bad_input_gives_one_clean_line(case: str, logs: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Each kind of bad log exits 2 with one error line naming the file (and line) and the problem."""
    path, message = _bad_logs(logs, tmp_path)[case]
    code, out, err = _report_of(capsys, path)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"tracedthreading report: error: {path}{message}"), err
    if case == "truncated":
        assert "truncated line?" in err


def test_lenient_skips_bad_lines(logs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--lenient`` reports the good lines and says how many bad ones were skipped, and where."""
    lines = logs["contended"].read_text().splitlines()
    log = tmp_path / "mixed.jsonl"
    log.write_text("\n".join(["{not json", lines[0], "\x00\x01garbage", *lines[1:]]) + "\n")
    code, out, err = _report_of(capsys, log, "--lenient")
    assert code == 0, err
    assert "skipped 2 bad lines (1, 3; first: invalid JSON" in out
    assert re.search(r"^accounts\s+lock\s+2\s+1\s", out, re.M)


def test_lenient_falls_back_when_the_summary_is_malformed(logs: dict[str, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed summary is skipped under ``--lenient`` and the individual events are used instead."""
    number, summary = _summary(logs["contended"])
    lines = logs["contended"].read_text().splitlines()
    lines[number - 1] = json.dumps(dict(summary, locks=[{"name": "accounts", "kind": "lock", "wait_hist": ["x"]}]))
    log = tmp_path / "bad_summary.jsonl"
    log.write_text("\n".join(lines) + "\n")
    code, out, _ = _report_of(capsys, log, "--lenient")
    assert code == 0
    assert f"skipped 1 bad line ({number}; first: malformed tracedthreading.summary event" in out
    assert "no tracedthreading.summary event" in out
    assert re.search(r"^accounts\s+lock\s+1\s", out, re.M)


@pytest.mark.parametrize("argv", [["--top", "0"], ["--top", "many"], ["--format", "xml"], []])
def test_usage_errors(argv: list[str], logs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Bad options exit 2 with argparse's usage message, never a traceback."""
    code, _, err = _report_of(capsys, *([logs["contended"]] if argv else []), *argv)
    assert code == 2
    assert "usage: python -m tracedthreading report" in err and "Traceback" not in err


# -- the lock-order graph's size and layout -------------------------------------------------------------


class CountingName(str):
    """A lock name that counts the equality tests made on it (the graph's work, machine-independent)."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        CountingName.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_graph_work_is_linear_in_edges() -> None:
    """``report --graph`` did a test per node per inversion edge (20,000 edges: 25 s); the work now grows
    linearly: counted as equality tests of names (each edge holds its own equal copies of the names)."""
    from tracedthreading.snapshot import Inversion, OrderEdge

    def edge(src: str, dst: str) -> OrderEdge:
        return OrderEdge(src=CountingName(src), dst=CountingName(dst), count=1, thread="t", thread_id=1,
                         stack=("a.py:1 in f",))

    def work(n: int) -> int:
        inversions = [Inversion(locks=(f"a{i}", f"b{i}"), edges=(edge(f"a{i}", f"b{i}"), edge(f"b{i}", f"a{i}")),
                                hint="", timed=False) for i in range(n)]
        order_edges = [edge(f"a{i}", f"c{i}") for i in range(n)]
        CountingName.comparisons = 0
        dot = _report.lock_order_dot(inversions, order_edges)
        assert dot.count(" -> ") == 3 * n
        return CountingName.comparisons

    small, large = work(500), work(4000)
    assert large < 12 * small + 1000, (small, large)  # 8x the edges: quadratic work would be 64x


def test_graph_spaces_ranks_and_nodes_for_edge_labels() -> None:
    """The two labels of a 2-cycle overlapped in ``docs/pictures/inversion.svg``: the graph leaves room between
    the label columns (nodesep) and the ranks (ranksep)."""
    dot = _report.lock_order_dot([], [])
    [graph] = [line for line in dot.splitlines() if line.strip().startswith("graph [")]
    settings = dict(re.findall(r"(\w+)=([\d.]+)", graph))
    assert float(settings["nodesep"]) >= 0.8 and float(settings["ranksep"]) >= 0.7


def _contended_line(number: int) -> str:
    return json.dumps({"lock": f"pool:{number % 50}", "kind": "lock", "thread": f"worker-{number % 8}",
                       "thread_id": 1000 + number % 8, "wait": 0.01, "timed_out": False, "holder": "main",
                       "holder_id": 1, "stack": [f"/srv/app/module.py:{number} in handler"] * 4,
                       "event": "lock.contended", "level": "warning", "timestamp": "2025-01-01T00:00:00Z"})


@pytest.mark.parametrize("with_summary", [True, False], ids=["summary-last", "no-summary"])
def test_report_streams_the_log_keeping_nothing_per_event(tmp_path: Path, with_summary: bool) -> None:
    """6,000 events of 50 locks (~2.5 MB): reading keeps the per-lock figures, not the events (it held
    every threshold event, and every summary, until the end of the file)."""
    import tracemalloc

    log = tmp_path / "big.jsonl"
    lines = [_contended_line(number) for number in range(6000)]
    if with_summary:
        stats = [LockStats(name=f"pool:{n}", kind="lock", acquisitions=1).as_dict() for n in range(50)]
        lines.append(json.dumps({"event": "tracedthreading.summary", "level": "info", "locks": stats}))
    log.write_text("\n".join(lines) + "\n")
    tracemalloc.start()
    try:
        data = _report.read_log(str(log))
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"read_log peaked at {peak / 1e6:.1f} MB for a {log.stat().st_size / 1e6:.1f} MB log"
    assert data.counts["lock.contended"] == 6000
    if with_summary:
        assert data.summary_line == 6001 and len(data.snapshot.locks) == 50
    else:
        rows = _report._findings(data).threshold_rows
        assert len(rows) == 50 and sum(row["waits"] for row in rows) == 6000


def test_report_counts_other_event_names_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An application that puts values in its event names: the first 1,000 such names are counted one
    by one, the rest together, so the count does not grow per event."""
    log = tmp_path / "app.jsonl"
    lines = [json.dumps({"event": f"served request {n}", "level": "info"}) for n in range(3000)]
    lines.append(_contended_line(1))
    log.write_text("\n".join(lines) + "\n")
    assert _report.main([str(log), "--format", "json"]) == 0
    counts = json.loads(capsys.readouterr().out)["event_counts"]
    assert len(counts) == 1000 + 2
    assert counts[_report.OTHER_NAMES] == 2000
    assert counts["lock.contended"] == 1
    assert sum(counts.values()) == 3001


def test_other_names_row_shows_how_many_names_it_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The "(other names)" row keeps its count of names through the summary event, and every report
    format shows it in the name column."""
    other = LockStats(name=_stats.OTHER_NAMES, kind="lock", instances=990_000, acquisitions=990_000,
                      folded_names=990_000)
    named = LockStats(name="conn-1", kind="lock", instances=1, acquisitions=1)
    log = tmp_path / "run.jsonl"
    summary = {"event": "tracedthreading.summary", "level": "info", "locks": [other.as_dict(), named.as_dict()]}
    log.write_text(json.dumps(summary) + "\n")
    data = _report.read_log(str(log))
    assert data.snapshot.lock(_stats.OTHER_NAMES).folded_names == 990_000
    assert data.snapshot.lock("conn-1").folded_names == 0
    for fmt in ("text", "markdown", "json"):
        assert _report.main([str(log), "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert "(990,000 other names)" in out, fmt
    assert str(other).startswith("(990,000 other names) (lock)")
