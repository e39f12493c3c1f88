"""Interleaved A/B of `bench/dispatch.py`'s rest, gap and throughput phases between trees.

    .venv/bin/python bench/ab_phases.py [--rounds 3] TREE [TREE ...]

Like `bench/ab.py`, but each run measures the figures the pull issue ranks by: dispatch
p50/p99 and the hub's CPU per dispatched job (rest), the busy GPU's idle gap and Redis's
CPU per job (gap), and the drain (throughput). Each tree is a checkout whose `src/` goes
first on `PYTHONPATH` (hub child included); rounds alternate the trees' order. Prints
each run and the mean over rounds per tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(tree: Path) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = dict(os.environ, PYTHONPATH=str(tree / "src"))
        subprocess.run(
            [sys.executable, str(tree / "bench" / "dispatch.py"), "--phases",
             "rest,gap,throughput", "--samples", "200", "--jobs", "3000", "--json", out.name],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        f = json.loads(Path(out.name).read_text())
    return {
        "rest_p50_ms": f["latency"]["p50_ms"],
        "rest_p99_ms": f["latency"]["p99_ms"],
        "hub_cpu_us": f["latency"]["hub_cpu_us_per_job"],
        "gap_p50_ms": f["gap"]["gap_p50_ms"],
        "redis_cpu_us": f["gap"]["redis_cpu_us_per_job"],
        "drain_jobs_per_s": f["throughput"]["drain_jobs_per_s"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rows: dict[Path, list[dict[str, float]]] = {t: [] for t in args.trees}
    for r in range(args.rounds):
        for tree in args.trees if r % 2 == 0 else list(reversed(args.trees)):
            rows[tree].append(figures := run(tree))
            print(tree, json.dumps(figures), flush=True)
    for tree, runs in rows.items():
        print(tree, {k: round(statistics.mean(x[k] for x in runs), 3) for k in runs[0]})


if __name__ == "__main__":
    main()
