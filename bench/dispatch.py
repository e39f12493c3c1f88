"""Hub benchmark: dispatch latency, throughput through one hub, memory with idle workers.

    .venv/bin/python bench/dispatch.py [--samples 300] [--jobs 5000] [--idle-workers 1000]
        [--phases rest,ws,throughput,memory]

Runs a private redis-server and one hub process (`python -m empq.hub`), and drives
them from this process with raw WebSocket workers speaking the protocol:

1. latency (`rest`, `ws`): 4 idle one-slot workers whose claims wait on the hub
   (`claim_job.wait_seconds`, as `empq worker` does); one job at a time is submitted
   after a random idle gap; latency = submit call start -> `job_assigned` received.
   Each worker completes with `claim_next`, waiting again. Targets p99 <= 5 ms.
2. gap: the GPU's idle gap. One busy one-slot worker with a backlog of `--jobs`
   queued jobs completes each job with `claim_next`; gap = `complete_job` sent ->
   the next `job_assigned` received. Target p50 <= 0.5 ms. The Redis server's CPU
   (`used_cpu_user + used_cpu_sys`) over the whole run divided by the jobs is the
   Redis CPU per no-op job lifecycle, batch submit to complete (target < 50 µs).
3. throughput: N no-op jobs are queued with the batch API, then workers (all in this
   one process) claim up to `--slots` jobs at a time and complete them; rate =
   jobs / (last completion acknowledged - first assignment). Target >= 2,500 jobs/s.
4. memory: `--idle-workers` workers connect, register and heartbeat; the hub
   process's RSS is read with psutil. Target < 300 MB for 1,000.

Prints a Markdown table and, with `--json FILE`, writes the figures there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from websockets.asyncio.client import ClientConnection, connect

from empq.redis_server import RedisServer, free_port

CAPS = {"services": ["bench"]}
#: How long the bench workers' claims wait on the hub.
WAIT = 20


def _msg(mtype: str, **fields: Any) -> str:
    return json.dumps({"type": mtype, "timestamp": int(time.time() * 1000), **fields})


@asynccontextmanager
async def hub_process(redis_url: str, workdir: Path) -> AsyncIterator[tuple[str, str, int]]:
    """A hub child process; yields (http_url, ws_url, pid)."""
    http_port, ws_port = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        EMPQ_REDIS_URL=redis_url,
        EMPQ_HUB_PORT=str(http_port),
        EMPQ_WS_PORT=str(ws_port),
        EMPQ_DATA_DIR=str(workdir / "data"),
        EMPQ_ARTIFACT_DIR=str(workdir / "artifacts"),
        EMPQ_LOG_LEVEL="warning",
        EMPQ_HEARTBEAT_TIMEOUT="600",
    )
    log = (workdir / "hub.log").open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "empq.hub", env=env, stdout=log, stderr=subprocess.STDOUT
    )
    http_url = f"http://127.0.0.1:{http_port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(400):
                try:
                    if (await client.get(http_url + "/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("hub did not start; see hub.log")
        yield http_url, f"ws://127.0.0.1:{ws_port}/", proc.pid
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
        log.close()


async def register(ws: ClientConnection, worker_id: str, slots: int = 1) -> None:
    """Register a raw worker and wait for the reply."""
    caps = {**CAPS, "performance": {"concurrent_jobs": slots}}
    await ws.send(_msg("register_worker", worker_id=worker_id, capabilities=caps))
    while json.loads(await ws.recv())["type"] != "worker_registered":
        pass


# --------------------------------------------------------------------------- latency


class RawHttp:
    """A keep-alive HTTP/1.1 client on asyncio streams, for timing the hub alone.

    httpx's AsyncClient costs about 3 ms per request on this machine (1.8 ms for its
    sync client, 0.7 ms for `http.client`, all against a trivial FastAPI route), which
    would swamp what this benchmark measures; the submitter must not be the slow part.
    """

    def __init__(self, http_url: str) -> None:
        host, port = http_url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        length = next(
            int(h.split(":", 1)[1]) for h in head if h.lower().startswith("content-length:")
        )
        return int(head[0].split()[1]), json.loads(await self.reader.readexactly(length))

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _job(i: int) -> dict[str, Any]:
    return {"type": "bench", "payload": {"i": i}, "requirements": {"service_type": "bench"}}


def _cpu_s(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each of these processes."""
    out = {}
    for name, pid in pids.items():
        t = psutil.Process(pid).cpu_times()
        out[name] = t.user + t.system
    return out


async def latency(
    http_url: str,
    ws_url: str,
    samples: int,
    via: str,
    pids: dict[str, int],
    marks: list[tuple[int, str]] | None = None,
) -> dict[str, float]:
    """Submit one job at a time (`via` "rest" or "ws") and time it to `job_assigned`.

    Also reports each process's CPU time per job over the measured samples (the whole
    cycle: submit, offer, claim, complete), which is steadier than latency from run to
    run: on this machine the chain runs on one CPU, so latency is mostly their sum.
    With `marks`, appends (`perf_counter_ns`, label) for each measured sample's steps
    seen from this side (bench/trace.py merges them with the hub's).
    """

    def mark(label: str) -> None:
        if marks is not None:
            marks.append((time.perf_counter_ns(), label))

    cpu0: dict[str, float] = {}
    assigned: dict[str, asyncio.Future[int]] = {}
    loop = asyncio.get_running_loop()

    def arrived(job_id: str) -> asyncio.Future[int]:
        # The assignment can beat the submit's reply: either side may create the future.
        return assigned.setdefault(job_id, loop.create_future())

    async def worker(n: int) -> None:
        async with connect(ws_url, max_size=None) as ws:
            await register(ws, f"lat-{via}-{n}")
            await ws.send(_msg("claim_job", wait_seconds=WAIT))
            await ws.send(_msg("ping"))
            while json.loads(await ws.recv())["type"] != "pong":
                pass  # the claim is parked once the ping is answered
            ready.release()
            async for raw in ws:
                m = json.loads(raw)
                if m["type"] == "job_assigned":
                    fut = arrived(m["job_id"])
                    if not fut.done():
                        fut.set_result(time.perf_counter_ns())
                    await ws.send(
                        _msg(
                            "complete_job",
                            job_id=m["job_id"],
                            claim_token=m["claim_token"],
                            result={},
                            claim_next={"wait_seconds": WAIT},
                        )
                    )
                elif m["type"] == "no_job_available":
                    await ws.send(_msg("claim_job", wait_seconds=WAIT))

    ready = asyncio.Semaphore(0)
    tasks = [asyncio.create_task(worker(n)) for n in range(4)]
    for _ in tasks:
        await ready.acquire()
    lat_ms: list[float] = []
    rest = RawHttp(http_url)
    async with connect(ws_url, max_size=None) as client:
        for i in range(samples + 20):
            await asyncio.sleep(random.uniform(0.005, 0.03))  # idle gap between samples
            t0 = time.perf_counter_ns()
            if via == "rest":
                status, reply = await rest.post("/api/jobs", _job(i))
                assert status == 201, (status, reply)
            else:
                job = _job(i)
                await client.send(_msg("submit_job", job_type=job.pop("type"), **job))
                while (reply := json.loads(await client.recv()))["type"] != "job_accepted":
                    pass
            t1 = await asyncio.wait_for(arrived(reply["job_id"]), 5)
            if i == 19:
                cpu0 = _cpu_s(pids)
            if i >= 20:  # warm-up
                lat_ms.append((t1 - t0) / 1e6)
                if marks is not None:
                    marks += [(t0, "sample start"), (t1, "sample end")]
    cpu1 = _cpu_s(pids)
    await rest.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    q = statistics.quantiles(lat_ms, n=100)
    return {
        "samples": len(lat_ms),
        "p50_ms": statistics.median(lat_ms),
        "p90_ms": q[89],
        "p99_ms": q[98],
        "max_ms": max(lat_ms),
        **{f"{name}_cpu_us_per_job": (cpu1[name] - cpu0[name]) * 1e6 / samples for name in pids},
    }


# --------------------------------------------------------------------------- gap


def _redis_cpu_s(info: dict[str, Any]) -> float:
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _commandstats(r: Any, jobs: int) -> dict[str, dict[str, float]]:
    """Per command (INFO commandstats since the last CONFIG RESETSTAT): calls and µs per job.

    `usec` is the time Redis spent executing the command (a script's inner commands are
    counted in their own rows as well as in EVALSHA's); reading and writing the sockets
    is not in it, which is the rest of `used_cpu`.
    """
    stats = await r.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): {
            "calls_per_job": row["calls"] / jobs,
            "usec_per_job": row["usec"] / jobs,
        }
        for name, row in stats.items()
    }


async def gap(
    http_url: str, ws_url: str, redis_url: str, jobs: int, hub_pid: int
) -> dict[str, Any]:
    """The idle gap of a busy one-slot worker with a backlog; Redis's and the hub's CPU per job."""
    import redis.asyncio as aredis

    r = aredis.Redis.from_url(redis_url)
    await r.config_resetstat()
    cpu0 = _redis_cpu_s(await r.info("cpu"))
    async with httpx.AsyncClient(base_url=http_url, timeout=60) as http:
        for start in range(0, jobs, 1000):
            batch = [_job(i) for i in range(start, min(start + 1000, jobs))]
            (await http.post("/api/jobs/batch", json={"jobs": batch})).raise_for_status()
    gaps: list[float] = []
    async with connect(ws_url, max_size=None) as ws:
        await register(ws, "gap-0")
        await ws.send(_msg("claim_job"))
        done = 0
        sent = 0
        t0 = time.perf_counter()
        hub = psutil.Process(hub_pid)
        hub0 = sum(hub.cpu_times()[:2])
        while done < jobs:
            m = json.loads(await ws.recv())
            if m["type"] != "job_assigned":
                continue
            if done:
                gaps.append((time.perf_counter_ns() - sent) / 1e6)
            done += 1
            next_claim = {"max_jobs": 1} if done < jobs else None
            sent = time.perf_counter_ns()
            await ws.send(
                _msg(
                    "complete_job",
                    job_id=m["job_id"],
                    claim_token=m["claim_token"],
                    result={},
                    **({"claim_next": next_claim} if next_claim else {}),
                )
            )
        elapsed = time.perf_counter() - t0
        while json.loads(await ws.recv())["type"] != "job_completed_ack":
            pass
        hub1 = sum(hub.cpu_times()[:2])
    cpu1 = _redis_cpu_s(await r.info("cpu"))
    commands = await _commandstats(r, jobs)
    await r.aclose()
    q = statistics.quantiles(gaps, n=100)
    return {
        "jobs": jobs,
        "gap_p50_ms": statistics.median(gaps),
        "gap_p90_ms": q[89],
        "gap_p99_ms": q[98],
        "one_slot_jobs_per_s": jobs / elapsed,
        "hub_cpu_us_per_cycle": (hub1 - hub0) * 1e6 / jobs,
        "redis_cpu_us_per_job": (cpu1 - cpu0) * 1e6 / jobs,
        "commandstats": commands,
    }


# --------------------------------------------------------------------------- throughput


async def throughput(
    http_url: str, ws_url: str, jobs: int, workers: int, slots: int, redis_url: str
) -> dict[str, float]:
    import redis.asyncio as aredis

    rc = aredis.Redis.from_url(redis_url)
    await rc.config_resetstat()
    cpu0 = _redis_cpu_s(await rc.info("cpu"))
    async with httpx.AsyncClient(base_url=http_url, timeout=60) as http:
        t0 = time.perf_counter()
        for start in range(0, jobs, 1000):
            batch = [
                {"type": "bench", "payload": {"i": i}, "requirements": {"service_type": "bench"}}
                for i in range(start, min(start + 1000, jobs))
            ]
            r = await http.post("/api/jobs/batch", json={"jobs": batch})
            r.raise_for_status()
        enqueue_s = time.perf_counter() - t0
    done = 0
    first: list[float] = []
    last = 0.0
    finished = asyncio.Event()

    async def worker(n: int) -> None:
        nonlocal done, last
        async with connect(ws_url, max_size=None) as ws:
            await register(ws, f"tp-{n}", slots)
            while not finished.is_set():
                await ws.send(_msg("claim_job", max_jobs=slots))
                await ws.send(_msg("ping"))  # replies come in order: pong ends the claim's
                got: list[dict[str, Any]] = []
                while True:
                    m = json.loads(await ws.recv())
                    if m["type"] == "job_assigned":
                        got.append(m)
                    elif m["type"] == "job_completed_ack":
                        done += 1
                        last = time.perf_counter()
                        if done >= jobs:
                            finished.set()
                    elif m["type"] == "pong":
                        break
                if got and not first:
                    first.append(time.perf_counter())
                for m in got:
                    await ws.send(
                        _msg(
                            "complete_job",
                            job_id=m["job_id"],
                            claim_token=m["claim_token"],
                            result={},
                        )
                    )
                if not got and done >= jobs:
                    finished.set()

    tasks = [asyncio.create_task(worker(n)) for n in range(workers)]
    await asyncio.wait_for(finished.wait(), 600)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = last - first[0]
    cpu1 = _redis_cpu_s(await rc.info("cpu"))
    commands = await _commandstats(rc, jobs)
    await rc.aclose()
    return {
        "redis_cpu_us_per_job": (cpu1 - cpu0) * 1e6 / jobs,
        "commandstats": commands,
        "jobs": jobs,
        "enqueue_jobs_per_s": jobs / enqueue_s,
        "drain_jobs_per_s": (jobs - 1) / elapsed,
        "workers": workers,
        "slots": slots,
    }


# --------------------------------------------------------------------------- memory


async def memory(ws_url: str, pid: int, n: int) -> dict[str, float]:
    proc = psutil.Process(pid)
    before = proc.memory_info().rss
    sockets: list[ClientConnection] = []
    try:
        for start in range(0, n, 100):
            batch = [
                await connect(ws_url, max_size=None) for _ in range(start, min(start + 100, n))
            ]
            await asyncio.gather(*(register(ws, f"idle-{start + k}") for k, ws in enumerate(batch)))
            sockets += batch
        t0 = time.perf_counter()
        for ws in sockets:
            await ws.send(_msg("worker_heartbeat", status="idle"))
        for ws in sockets:
            while json.loads(await ws.recv())["type"] != "worker_heartbeat_ack":
                pass
        burst_s = time.perf_counter() - t0
        after = proc.memory_info().rss
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "workers": n,
        "rss_before_mb": before / 2**20,
        "rss_mb": after / 2**20,
        "heartbeat_burst_s": burst_s,
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=4, help="throughput: WebSocket workers")
    ap.add_argument("--slots", type=int, default=64, help="throughput: jobs per claim")
    ap.add_argument("--idle-workers", type=int, default=1000)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--commandstats",
        action="store_true",
        help="also print Redis's per-command calls and µs per job for gap and throughput",
    )
    ap.add_argument(
        "--phases",
        default="rest,ws,gap,throughput,memory",
        help="comma-separated subset of: rest, ws, gap, throughput, memory",
    )
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    if unknown := phases - {"rest", "ws", "gap", "throughput", "memory"}:
        ap.error(f"--phases: unknown phase(s) {', '.join(sorted(unknown))}")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, RedisServer(persistent=False) as redis:
        async with hub_process(redis.url, Path(tmp)) as (http_url, ws_url, pid):
            pids = {"hub": pid, "redis": redis.process.pid if redis.process else os.getpid()}
            if "rest" in phases:
                results["latency"] = await latency(http_url, ws_url, args.samples, "rest", pids)
            if "ws" in phases:
                results["latency_ws"] = await latency(http_url, ws_url, args.samples, "ws", pids)
            if "gap" in phases:
                results["gap"] = await gap(http_url, ws_url, redis.url, args.jobs, pid)
            if "throughput" in phases:
                results["throughput"] = await throughput(
                    http_url, ws_url, args.jobs, args.workers, args.slots, redis.url
                )
            if "memory" in phases:
                results["memory"] = await memory(ws_url, pid, args.idle_workers)
    print("| figure | value | target |\n|---|---|---|")
    for key, name in (("latency", "REST"), ("latency_ws", "WebSocket")):
        if figures := results.get(key):
            print(
                f"| dispatch p50, {name} submit -> job_assigned "
                f"| {figures['p50_ms']:.2f} ms | <= 2 ms |"
            )
            print(f"| dispatch p99, {name} submit | {figures['p99_ms']:.2f} ms | <= 5 ms |")
            print(
                f"| CPU per job, {name} latency phase: hub / Redis "
                f"| {figures['hub_cpu_us_per_job']:.0f} / {figures['redis_cpu_us_per_job']:.0f} µs"
                " | |"
            )
    if g := results.get("gap"):
        print(
            f"| GPU idle gap, complete_job sent -> next job_assigned (p50 / p99) "
            f"| {g['gap_p50_ms']:.2f} / {g['gap_p99_ms']:.2f} ms | p50 <= 0.5 ms |"
        )
        print(f"| one one-slot worker, claim_next | {g['one_slot_jobs_per_s']:.0f} jobs/s | |")
        print(
            f"| hub CPU per complete-and-claim cycle (gap phase) "
            f"| {g['hub_cpu_us_per_cycle']:.0f} µs | |"
        )
        print(
            f"| Redis CPU per no-op job, batch submit to complete "
            f"| {g['redis_cpu_us_per_job']:.0f} µs | < 50 µs |"
        )
    if tp := results.get("throughput"):
        print(
            f"| throughput, one hub, one worker process | {tp['drain_jobs_per_s']:.0f} jobs/s "
            "| >= 2,500 |"
        )
        print(f"| batch enqueue | {tp['enqueue_jobs_per_s']:.0f} jobs/s | |")
        print(
            f"| Redis CPU per no-op job, batch submit, claims of {tp['slots']}, complete "
            f"| {tp['redis_cpu_us_per_job']:.0f} µs | < 50 µs |"
        )
    if mem := results.get("memory"):
        print(f"| hub RSS with {mem['workers']} idle workers | {mem['rss_mb']:.0f} MB | < 300 MB |")
        print(
            f"| all {mem['workers']} heartbeats at once, sent -> every ack | "
            f"{mem['heartbeat_burst_s'] * 1000:.0f} ms | |"
        )
    if args.commandstats:
        for key in ("gap", "throughput"):
            if not (rows := results.get(key, {}).get("commandstats")):
                continue
            print(f"\n{key}: Redis commands per job (INFO commandstats)\n")
            print("| command | calls per job | µs per job |\n|---|---:|---:|")
            for name, row in sorted(rows.items(), key=lambda kv: -kv[1]["usec_per_job"]):
                print(f"| {name} | {row['calls_per_job']:.2f} | {row['usec_per_job']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
