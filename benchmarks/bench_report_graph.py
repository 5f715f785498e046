"""Time of ``python -m tracedthreading report LOG --graph OUT.dot`` against the number of order edges.

    python benchmarks/bench_report_graph.py                 # 2,500 / 5,000 / 10,000 / 20,000 edges
    python benchmarks/bench_report_graph.py --edges 20000   # one size

Each size writes a synthetic log: one ``tracedthreading.summary`` line whose ``order_edges`` hold N
edges, half of them in 2-cycles reported as inversions (the red part of the graph), then runs the
report in a fresh interpreter and prints the wall time. Target (issue #15): linear growth; 20,000
edges took 25 s before the fix (a membership test per node per inversion edge).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _edge(src: str, dst: str) -> dict[str, object]:
    return {"src": src, "dst": dst, "count": 3, "thread": "worker", "thread_id": 1,
            "stack": ["app.py:10 in main", "app.py:20 in transfer"], "timed": False, "guards": [], "context": ""}


def write_log(path: Path, edges: int) -> None:
    """A summary event with ``edges`` order edges, half of them in reported 2-cycles."""
    pairs = edges // 4
    order_edges, inversions = [], []
    for i in range(pairs):
        cycle = [_edge(f"a{i}", f"b{i}"), _edge(f"b{i}", f"a{i}")]
        order_edges.extend(cycle)
        inversions.append({"locks": [f"a{i}", f"b{i}"], "edges": cycle, "hint": "", "timed": False, "context": ""})
        order_edges.extend([_edge(f"b{i}", f"c{i}"), _edge(f"c{i}", f"d{i}")])
    summary = {"event": "tracedthreading.summary", "level": "info", "timestamp": "2025-01-01T00:00:00Z",
               "locks": [], "inversions": inversions, "deadlocks": [], "order_edges": order_edges}
    path.write_text(json.dumps(summary) + "\n", encoding="utf-8")


def time_report(edges: int, workdir: Path) -> float:
    """Seconds the report with ``--graph`` takes on a log of ``edges`` edges."""
    log, out = workdir / f"log{edges}.jsonl", workdir / f"graph{edges}.dot"
    write_log(log, edges)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tracedthreading", "report", str(log), "--graph", str(out)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    """Print the report's wall time per size, and the time per edge."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, action="append", help="number of order edges (repeatable)")
    args = parser.parse_args()
    sizes = args.edges or [2_500, 5_000, 10_000, 20_000]
    with tempfile.TemporaryDirectory() as tmp:
        print("| edges | report --graph, s | us per edge |")
        print("|------:|------------------:|------------:|")
        for edges in sizes:
            seconds = time_report(edges, Path(tmp))
            print(f"| {edges:,} | {seconds:.2f} | {seconds / edges * 1e6:.0f} |")


if __name__ == "__main__":
    main()
