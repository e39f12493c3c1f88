"""What each script of a job's life costs Redis, and how much of it is the commands inside.

    .venv/bin/python bench/lifecycle_cost.py [--jobs 2000]

Starts its own redis-server. Through the broker (no hub), one phase at a time with
CONFIG RESETSTAT before each: submissions one by one, a batch submission, claims one
job at a time, completions one by one, then a busy worker's batches (claims of 64, 64
completions a call). For each phase prints EVALSHA's µs per job (the script's whole
run, its commands included) and the µs of the commands the script ran (their own
commandstats rows), so the difference is the script's own overhead: Lua, and what each
`redis.call` costs beyond its command. A trivial script and a one-command script
calibrate that overhead.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import redis.asyncio as aredis

from empq.broker import Broker
from empq.config import BrokerSettings
from empq.models import JobSubmission, WorkerCapabilities
from empq.redis_server import RedisServer

CAPS = WorkerCapabilities(services=["bench"])
NOT_INNER = {"evalsha", "config|resetstat", "info", "script|load"}


async def _phase(r: Any, name: str, jobs: int) -> None:
    rows = {
        k.removeprefix("cmdstat_"): (v["calls"], v["usec"])
        for k, v in (await r.info("commandstats")).items()
    }
    calls, usec = rows.get("evalsha", (0, 0))
    inner = [(k, c, u) for k, (c, u) in rows.items() if k not in NOT_INNER]
    inner_usec = sum(u for _, _, u in inner)
    inner_calls = sum(c for _, c, _ in inner)
    top = ", ".join(f"{k} {c / jobs:g}" for k, c, u in sorted(inner, key=lambda t: -t[2])[:6])
    print(
        f"| {name} | {calls / jobs:.3g} | {usec / jobs:.1f} | {inner_calls / jobs:.1f} "
        f"| {inner_usec / jobs:.1f} | {(usec - inner_usec) / jobs:.1f} | {top} |"
    )
    await r.config_resetstat()


async def _calibrate(r: Any, calls: int) -> None:
    for body, label in (
        ("return 1", "trivial script"),
        ("redis.call('INCR', KEYS[1]) return 1", "one INCR"),
        ("for i = 1, 10 do redis.call('HINCRBY', KEYS[1], 'f' .. i, 1) end return 1", "10 HINCRBY"),
    ):
        sha = await r.script_load(body)
        await r.config_resetstat()
        for _ in range(calls):
            await r.evalsha(sha, 1, f"calibrate:{label}")
        await _phase(r, f"calibration: {label}", calls)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2000)
    n = ap.parse_args().jobs
    with RedisServer(persistent=False) as server:
        r = aredis.Redis.from_url(server.url)
        broker = await Broker.connect(BrokerSettings(redis_url=server.url))
        subs = [
            JobSubmission(type="bench", payload={"i": i}, requirements={"service_type": "bench"})
            for i in range(2 * n)
        ]
        print(
            "| phase | scripts per job | EVALSHA µs per job | commands per job "
            "| their µs | script overhead µs | most costly commands (calls per job) |"
        )
        print("|---|---:|---:|---:|---:|---:|---|")
        await _calibrate(r, n)
        await r.config_resetstat()
        for sub in subs[:n]:
            await broker.submit(sub)
        await _phase(r, "submit, one by one", n)
        await broker.submit_many(subs[n:])
        await _phase(r, "submit, one batch", n)
        claims = []
        for _ in range(2 * n):
            claims += await broker.claim("bench-worker", CAPS)
        await _phase(r, "claim, one job a call", 2 * n)
        for c in claims:
            await broker.complete(c.job.id, c.claim_token, {})
        await _phase(r, "complete, one job a call", 2 * n)
        # A busy worker's batches: claims of 64, and its 64 reports of one turn.
        await broker.submit_many(subs)
        await r.config_resetstat()
        wide = WorkerCapabilities(services=["bench"], performance={"concurrent_jobs": 64})
        claims = []
        while len(claims) < 2 * n:
            claims += await broker.claim("bench-worker", wide, max_jobs=64)
        await _phase(r, "claim, 64 jobs a call", 2 * n)
        for i in range(0, len(claims), 64):
            await asyncio.gather(
                *(broker.complete(c.job.id, c.claim_token, {}) for c in claims[i : i + 64])
            )
        await _phase(r, "complete, 64 jobs a call", 2 * n)
        await broker.close()
        await r.aclose()


if __name__ == "__main__":
    asyncio.run(main())
