"""Fair share: how long a small customer waits behind a burst, and what it costs a claim.

    .venv/bin/python bench/fairness.py [--burst 5000] [--small 10] [--job-ms 10] [--json FILE]

Starts its own redis-server on a free port; every figure is measured here, now.

1. wait: customer A submits `--burst` jobs, then customer B submits `--small` jobs at
   the same priority. Four one-slot workers (claim loops in this process, each job
   "running" `--job-ms` ms, then completed) drain the queue. B's wait per job is
   assigned_at - created_at, read back from the job records; reported as p50 and max,
   with fair share off (strict order) and on (`EMPQ_FAIR_SHARE=customer`).
2. claim cost: 10,000 jobs of 10 customers queued at one priority; one worker claims
   and completes `--claims` jobs one at a time; latency = one `claim` call. Off vs on,
   and their ratio (the target is <= 1.5x); also the time to queue those jobs, since
   fair share does its work when a job is queued.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any, Literal

from empq.broker import Broker
from empq.config import BrokerSettings
from empq.models import JobSubmission, WorkerCapabilities
from empq.redis_server import RedisServer

CAPS = WorkerCapabilities(services=["gpu"])
Mode = Literal["off", "customer"]


def job(customer: str) -> JobSubmission:
    return JobSubmission(type="t", customer_id=customer, requirements={"service_type": "gpu"})


async def fresh(url: str, mode: Mode) -> Broker:
    broker = await Broker.connect(BrokerSettings(redis_url=url, fair_share=mode))
    await broker.redis.flushdb()
    return broker


async def queue(broker: Broker, customer: str, n: int) -> list[str]:
    ids: list[str] = []
    for i in range(0, n, 1000):
        results = await broker.submit_many([job(customer)] * min(1000, n - i))
        ids += [r.job_id for r in results]
    return ids


async def wait_case(url: str, mode: Mode, burst: int, small: int, job_ms: float) -> dict[str, Any]:
    broker = await fresh(url, mode)
    try:
        await queue(broker, "A", burst)
        b_ids = await queue(broker, "B", small)
        remaining = set(b_ids)
        done = asyncio.Event()

        async def worker(n: int) -> None:
            while not done.is_set():
                got = await broker.claim(f"w{n}", CAPS)
                if not got:
                    return
                (a,) = got
                await asyncio.sleep(job_ms / 1000)
                await broker.complete(a.job_id, a.claim_token, {})
                remaining.discard(a.job_id)
                if not remaining:
                    done.set()  # B is served; the rest of A's burst changes nothing here

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(4)))
        elapsed = time.perf_counter() - t0
        waits = []
        for job_id in b_ids:
            j = await broker.get(job_id)
            assert j.assigned_at is not None
            waits.append((j.assigned_at - j.created_at).total_seconds())
        a_done = (await broker.stats())["completed_total"] - small
        return {
            "mode": mode,
            "b_wait_p50_s": statistics.median(waits),
            "b_wait_max_s": max(waits),
            "a_jobs_before_b_done": a_done,
            "run_s": elapsed,
        }
    finally:
        await broker.close()


async def claim_cost(url: str, depth: int, claims: int) -> dict[str, tuple[list[float], float]]:
    """Per mode: claim latencies, and the seconds it took to queue the jobs.

    Both queues live side by side (two key prefixes on one Redis) and the claims
    alternate between them, so both modes are timed under the same load on the machine.
    """
    brokers: dict[str, Broker] = {}
    fills: dict[str, float] = {}
    try:
        for mode in ("off", "customer"):
            settings = BrokerSettings(redis_url=url, fair_share=mode, key_prefix=f"b{mode}")
            broker = brokers[mode] = await Broker.connect(settings)
            t0 = time.perf_counter()
            for c in range(10):
                await queue(broker, f"C{c}", depth // 10)
            fills[mode] = time.perf_counter() - t0
        lat: dict[str, list[float]] = {m: [] for m in brokers}
        for _ in range(claims):
            for mode, broker in brokers.items():
                t0 = time.perf_counter()
                (a,) = await broker.claim("w", CAPS)
                lat[mode].append(time.perf_counter() - t0)
                await broker.complete(a.job_id, a.claim_token, {})
        return {m: (lat[m], fills[m]) for m in brokers}
    finally:
        for broker in brokers.values():
            await broker.close()


def ms(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"burst": args.burst, "small": args.small, "job_ms": args.job_ms}
    with RedisServer(persistent=False) as server:
        out["wait"] = [
            await wait_case(server.url, mode, args.burst, args.small, args.job_ms)
            for mode in ("off", "customer")
        ]
        cost = await claim_cost(server.url, 10_000, args.claims)
    lat = {m: v[0] for m, v in cost.items()}
    out["claim_ms"] = {m: {"p50": ms(v, 50), "p99": ms(v, 99)} for m, v in lat.items()}
    out["submit_us_per_job"] = {m: v[1] / 10_000 * 1e6 for m, v in cost.items()}
    out["claim_p50_ratio"] = out["claim_ms"]["customer"]["p50"] / out["claim_ms"]["off"]["p50"]
    print(
        f"A: {args.burst} jobs, then B: {args.small} jobs at the same priority; 4 one-slot "
        f"workers, {args.job_ms} ms per job"
    )
    print(f"{'fair share':12} {'B wait p50 s':>13} {'B wait max s':>13} {'A done by then':>15}")
    for row in out["wait"]:
        print(
            f"{row['mode']:12} {row['b_wait_p50_s']:13.3f} {row['b_wait_max_s']:13.3f} "
            f"{row['a_jobs_before_b_done']:15d}"
        )
    print(f"claim latency at 10,000 queued jobs (10 customers), {args.claims} claims:")
    for mode, row in out["claim_ms"].items():
        print(f"  {mode:10} p50 {row['p50']:.3f} ms  p99 {row['p99']:.3f} ms")
    print(f"  on / off (p50): {out['claim_p50_ratio']:.2f}x (target <= 1.5x)")
    subs = out["submit_us_per_job"]
    print(
        f"queueing them (batches of 1,000), per job: off {subs['off']:.1f} us, "
        f"on {subs['customer']:.1f} us (the turn is computed in submit.lua)"
    )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--job-ms", type=float, default=10.0)
    parser.add_argument("--claims", type=int, default=2000)
    parser.add_argument("--json", default=None)
    cli = parser.parse_args()
    figures = asyncio.run(main(cli))
    if cli.json:
        Path(cli.json).write_text(json.dumps(figures, indent=2))
