"""Interleaved A/B of `bench/dispatch.py` between checkouts of empq.

    .venv/bin/python bench/ab.py BASE_TREE NEW_TREE [--rounds 4] [--phase rest] [--samples 300]

Each tree is a checkout (a `git worktree`, say) whose `src/` is put first on
`PYTHONPATH` for its runs, hub child included. Rounds alternate the trees' order
(A B, B A, ...), each run with a fresh Redis and hub, so that the machine's drift over
the minutes of a comparison falls on both alike; this machine's hour-to-hour noise is
larger than most single changes. Prints each run, then the mean over rounds of each
tree's p50, p90 and p99.
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

KEYS = {"rest": "latency", "ws": "latency_ws"}


def run(tree: Path, phase: str, samples: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = dict(os.environ, PYTHONPATH=str(tree / "src"))
        subprocess.run(
            [
                sys.executable,
                str(tree / "bench" / "dispatch.py"),
                "--phases",
                phase,
                "--samples",
                str(samples),
                "--json",
                out.name,
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        figures: dict[str, float] = json.loads(Path(out.name).read_text())[KEYS[phase]]
        return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+", type=Path)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--phase", choices=sorted(KEYS), default="rest")
    ap.add_argument("--samples", type=int, default=300)
    args = ap.parse_args()
    got: dict[Path, list[dict[str, float]]] = {t: [] for t in args.trees}
    for r in range(args.rounds):
        order = args.trees if r % 2 == 0 else list(reversed(args.trees))
        for tree in order:
            f = run(tree, args.phase, args.samples)
            got[tree].append(f)
            print(
                f"round {r + 1} {tree}: p50 {f['p50_ms']:.2f} p90 {f['p90_ms']:.2f} "
                f"p99 {f['p99_ms']:.2f} ms",
                flush=True,
            )
    print("\n| tree | p50 ms | p90 ms | p99 ms |\n|---|---:|---:|---:|")
    for tree, runs in got.items():
        means = [statistics.mean(f[k] for f in runs) for k in ("p50_ms", "p90_ms", "p99_ms")]
        print(f"| {tree} | " + " | ".join(f"{m:.2f}" for m in means) + " |")


if __name__ == "__main__":
    main()
