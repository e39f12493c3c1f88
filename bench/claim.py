"""Claim speed of the broker: claims/s and latency at queue depths, and the adversarial case.

    .venv/bin/python bench/claim.py [--quick]

Starts its own redis-server on a free port. Prints one table; every figure is measured
here, on this machine, now. Workloads:

- depth N: N queued jobs over 10 service types with mixed GPU requirements and
  priorities; a worker serving 3 of the services with a 24 GB GPU claims and
  completes jobs one at a time (latency = one `claim` call).
- adversarial: 100,000 higher-priority jobs the worker cannot run (another service, or
  more GPU memory than it has) ahead of the jobs it can run.
- cycles/s: 16 concurrent claim-and-complete loops in this one process, claiming one
  job per call, and claiming up to 8 per call (`claim_job` with `max_jobs`, as a worker
  with 8 free slots does); every job is completed with its own call either way.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from empq.broker import Broker
from empq.config import BrokerSettings
from empq.models import JobSubmission, WorkerCapabilities
from empq.redis_server import RedisServer

SERVICES = [f"svc{i}" for i in range(10)]
WORKER = WorkerCapabilities(
    services=SERVICES[:3], hardware={"gpu_memory_gb": 24}, performance={"concurrent_jobs": 1}
)


def mixed_job(rng: random.Random) -> JobSubmission:
    return JobSubmission(
        type="t",
        priority=rng.randint(0, 100),
        requirements={
            "service_type": rng.choice(SERVICES),
            "hardware": {"gpu_memory_gb": rng.choice([0, 8, 16, 24, 48])},
        },
    )


async def fill(broker: Broker, subs: list[JobSubmission]) -> None:
    for i in range(0, len(subs), 1000):
        await broker.submit_many(subs[i : i + 1000])


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000


async def timed_claims(
    broker: Broker,
    caps: WorkerCapabilities,
    n: int,
    refill: random.Random | None = None,
) -> list[float]:
    """Latency of n claims, each job completed (and, with `refill`, replaced: constant depth)."""
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        got = await broker.claim("bench", caps)
        lat.append(time.perf_counter() - t0)
        if not got:
            raise RuntimeError("ran out of claimable jobs")
        job = got[0].job
        await broker.complete(job.id, got[0].claim_token, {})
        if refill is not None:  # a job like the one taken, so the mix stays the same
            await broker.submit(
                JobSubmission(
                    type="t", priority=refill.randint(0, 100), requirements=job.requirements
                )
            )
    return lat


async def depth_case(broker: Broker, depth: int, claims: int) -> tuple[str, list[float]]:
    await broker.redis.flushdb()
    rng = random.Random(depth)
    await fill(broker, [mixed_job(rng) for _ in range(depth)])
    lat = await timed_claims(broker, WORKER, claims, refill=rng)
    return f"depth {depth:,}", lat


async def adversarial(broker: Broker, kind: str, claims: int) -> tuple[str, list[float]]:
    await broker.redis.flushdb()
    if kind == "service":
        blocker = {"service_type": "svc9"}
    else:
        blocker = {"service_type": "svc0", "hardware": {"gpu_memory_gb": 48}}
    ahead = [JobSubmission(type="t", priority=100, requirements=blocker) for _ in range(100_000)]
    await fill(broker, ahead)
    mine = [
        JobSubmission(type="t", priority=0, requirements={"service_type": "svc0"})
        for _ in range(claims)
    ]
    await fill(broker, mine)
    lat = await timed_claims(broker, WORKER, claims)
    return f"adversarial ({kind}) behind 100,000", lat


async def cycles(broker: Broker, jobs: int, loops: int, batch: int = 1) -> float:
    """Claim-and-complete cycles/s: `loops` claimers, each claiming `batch` jobs per call."""
    await broker.redis.flushdb()
    caps = WorkerCapabilities(services=["svc0"], performance={"concurrent_jobs": batch})
    await fill(broker, [JobSubmission(type="t", requirements={"service_type": "svc0"})] * jobs)
    done = 0

    async def loop(i: int) -> None:
        nonlocal done
        while True:
            got = await broker.claim(f"w{i}", caps, max_jobs=batch)
            if not got:
                return
            for a in got:
                await broker.complete(a.job.id, a.claim_token, {})
            done += len(got)

    t0 = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(loops)))
    return done / (time.perf_counter() - t0)


async def main(quick: bool) -> None:
    claims = 300 if quick else 2000
    with RedisServer(persistent=False) as server:
        broker = await Broker.connect(BrokerSettings(redis_url=server.url))
        rows = []
        for depth in (1_000, 10_000) if quick else (1_000, 10_000, 100_000):
            rows.append(await depth_case(broker, depth, claims))
        for kind in ("service", "gpu"):
            rows.append(await adversarial(broker, kind, min(claims, 500)))
        rate = await cycles(broker, 5_000 if quick else 20_000, 16)
        rate_batched = await cycles(broker, 5_000 if quick else 20_000, 16, batch=8)
        await broker.close()
    print(f"{'case':40} {'claims/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, lat in rows:
        print(f"{name:40} {len(lat) / sum(lat):9.0f} {pct(lat, 50):8.3f} {pct(lat, 99):8.3f}")
    p50 = {name: statistics.median(lat) for name, lat in rows}
    if "depth 100,000" in p50:
        print(f"p50 at 100k / p50 at 1k: {p50['depth 100,000'] / p50['depth 1,000']:.2f}x")
    label = "claim-and-complete cycles/s (one process, 16 loops"
    print(f"{label}, 1 job per claim): {rate:,.0f}")
    print(f"{label}, 8 jobs per claim): {rate_batched:,.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller run for a smoke check")
    asyncio.run(main(parser.parse_args().quick))
