"""What one script call costs the caller's CPU and Redis's, cold and warm.

    .venv/bin/python bench/script_cost.py [--calls 1500] [--reservations 1000]

1. A trivial script through the broker's script channel: the calling thread's CPU
   (user + system: the socket's syscalls included) per round trip, right after
   evicting the caches (as between two dispatches) and again at once.
2. Submissions that claim their job (`Broker.submit_and_claim`, the hub's path for a job a parked
   worker is offered) each followed by its completion, 5-30 ms apart: Redis's CPU
   per pair (from its process's counters) and the calling thread's CPU per
   `submit_and_claim`.

Runs on uvloop, as the hub does. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

import psutil
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from cold import _evict

from empq.broker import Broker
from empq.broker.core import new_job_id
from empq.config import BrokerSettings
from empq.matching import WorkerState
from empq.models import JobSubmission, WorkerCapabilities
from empq.redis_server import RedisServer
from empq.scripts import BatchedScript

CAPS = WorkerCapabilities(services=["bench"])


def _job() -> JobSubmission:
    return JobSubmission(type="bench", payload={"i": 1}, requirements={"service_type": "bench"})


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


async def run(calls: int, reservations: int) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with RedisServer(persistent=False) as server:
        assert server.process is not None
        redis_proc = psutil.Process(server.process.pid)
        broker = await Broker.connect(BrokerSettings(redis_url=server.url))
        try:
            trivial = BatchedScript(
                broker.redis.register_script("return {1, 'abc', {2, 3}}"), broker.scripts.channel
            )
            await trivial()
            cold, warm = [], []
            for _ in range(calls):
                await asyncio.sleep(0.002)
                _evict()
                t = time.thread_time_ns()
                await trivial()
                cold.append(time.thread_time_ns() - t)
                t = time.thread_time_ns()
                await trivial()
                warm.append(time.thread_time_ns() - t)
            rows.append(("trivial script round trip, caller CPU, cold", _us(cold)))
            rows.append(("trivial script round trip, caller CPU, warm", _us(warm)))

            # A job of these requirements once, so that reservations are made for them.
            await broker.submit(_job())
            (first,) = await broker.claim("w", CAPS)
            await broker.complete(first.job_id, first.claim_token, {})
            spent: list[int] = []
            redis0 = _cpu_s(redis_proc)
            for _ in range(reservations):
                await asyncio.sleep(random.uniform(0.005, 0.03))
                sub, job_id = _job(), new_job_id()
                t = time.thread_time_ns()
                _, got = await broker.submit_and_claim(sub, job_id, "w", CAPS, WorkerState())
                spent.append(time.thread_time_ns() - t)
                assert got is not None, "the job was not reserved"
                await broker.complete(got.job_id, got.claim_token, {})
            redis_us = (_cpu_s(redis_proc) - redis0) * 1e6 / reservations
            rows.append(("reserved submission + completion, Redis CPU", f"{redis_us:.0f} µs"))
            rows.append(("submit_and_claim, caller CPU (p50)", _us(spent)))
        finally:
            await broker.close()
    return rows


def _us(ns: list[int]) -> str:
    return f"{statistics.median(ns) / 1000:.0f} µs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1500)
    ap.add_argument("--reservations", type=int, default=1000)
    args = ap.parse_args()
    rows = uvloop.run(run(args.calls, args.reservations))
    print("| figure | value |\n|---|---:|")
    for label, value in rows:
        print(f"| {label} | {value} |")


if __name__ == "__main__":
    main()
