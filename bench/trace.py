"""Where the REST dispatch time goes: the hub's marks and the bench's on one time line.

    .venv/bin/python bench/trace.py [--samples 300] [--via rest|ws]

Runs `bench/dispatch.py`'s latency phase against a hub that has `bench/tracing` on its
`PYTHONPATH` (its `sitecustomize` wraps the functions of the dispatch path, see there),
then prints, for each step, its median position after the submit call started and the
hub's CPU time used since the request's bytes arrived. The wrappers cost a few
microseconds each, so the latency is a little above `bench/dispatch.py`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import dispatch

from empq.redis_server import RedisServer

END = "job_assigned read by the worker (end)"


async def run(samples: int, via: str) -> tuple[list[tuple[int, str]], list[list[object]]]:
    bench_marks: list[tuple[int, str]] = []
    with tempfile.TemporaryDirectory() as tmp, RedisServer(persistent=False) as redis:
        out = Path(tmp) / "hub-marks.json"
        here = Path(__file__).parent
        os.environ["EMPQ_TRACE_OUT"] = str(out)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(here / "tracing"), str(here.parent / "src"), os.environ.get("PYTHONPATH", "")]
        )
        async with dispatch.hub_process(redis.url, Path(tmp)) as (http_url, ws_url, pid):
            pids = {"hub": pid}
            await dispatch.latency(http_url, ws_url, samples, via, pids, bench_marks)
        hub_marks = json.loads(out.read_text())
    return bench_marks, hub_marks


def report(bench_marks: list[tuple[int, str]], hub_marks: list[list[object]]) -> None:
    hub_marks.sort(key=lambda m: int(str(m[0])))
    times = [int(str(m[0])) for m in hub_marks]
    starts = sorted(t for t, label in bench_marks if label == "sample start")
    ends = sorted(t for t, label in bench_marks if label == "sample end")
    side = sorted((t, label) for t, label in bench_marks if label.startswith("bench:"))
    side_t = [t for t, _ in side]
    at: dict[str, list[float]] = collections.defaultdict(list)
    cpu: dict[str, list[float]] = collections.defaultdict(list)
    for t0, t1 in zip(starts, ends, strict=True):
        seen: collections.Counter[str] = collections.Counter()
        cpu0 = None
        for t, c, label in hub_marks[
            bisect.bisect_left(times, t0) : bisect.bisect_right(times, t1)
        ]:
            seen[str(label)] += 1
            key = str(label) if seen[str(label)] == 1 else f"{label} #{seen[str(label)]}"
            cpu0 = int(str(c)) if cpu0 is None else cpu0
            at[key].append((int(str(t)) - t0) / 1000)
            cpu[key].append((int(str(c)) - cpu0) / 1000)
        for t, label in side[bisect.bisect_left(side_t, t0) : bisect.bisect_right(side_t, t1)]:
            at[label].append((t - t0) / 1000)
        at[END].append((t1 - t0) / 1000)
    n = len(starts)
    print(f"{n} samples; median latency {statistics.median(at[END]):.0f} µs\n")
    print("| step | at (µs, p50) | hub CPU since request (µs, p50) | samples |")
    print("|---|---:|---:|---:|")
    rows = sorted((statistics.median(v), k) for k, v in at.items() if len(v) >= n / 2)
    for med, key in rows:
        c = f"{statistics.median(cpu[key]):.0f}" if key in cpu else ""
        print(f"| {key} | {med:.0f} | {c} | {len(at[key])} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--via", choices=["rest", "ws"], default="rest")
    args = ap.parse_args()
    report(*asyncio.run(run(args.samples, args.via)))


if __name__ == "__main__":
    main()
