"""The worker's own overhead per job, and jobs/s one worker process sustains.

    .venv/bin/python bench/worker.py [--jobs 5000] [--concurrency 1,16,64] [--json]

Starts its own redis-server, a hub (`python -m empq.hub`) and, per run, one worker
process (`python -m empq.worker`, simulation connector, zero duration). Every
figure is measured here, on this machine, now:

- direct: `SimulationConnector.process` called in a loop in this process — the
  connector's own cost per job, the baseline.
- per concurrency C: N jobs are queued first, then one worker process with C slots
  drains them. jobs/s = N / (time from the worker's first registration until the
  hub has all N completed). worker CPU/job = the worker process's CPU seconds / N;
  overhead/job = worker CPU/job - direct/job: what the queue adds inside the worker.
  latency/job at C=1 is wall time per job (claim round trip + report), minus direct.
  With the real hub, the hub's and Redis's CPU per job over the same window too: the
  three processes share the machine's cores, so their sum bounds the drain.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis
from websockets.exceptions import ConnectionClosed

from empq.config import WorkerSettings
from empq.connectors.base import JobContext, no_progress
from empq.connectors.simulation import SimulationConnector
from empq.models import Requirements
from empq.redis_server import RedisServer, free_port


async def direct_per_job(n: int) -> float:
    """Seconds per job calling the connector directly (no queue)."""
    sim = SimulationConnector(WorkerSettings(simulation_duration=0))
    req = Requirements(service_type="simulation")
    start = time.perf_counter()
    for i in range(n):
        await sim.process(JobContext(id=str(i), type="sim", requirements=req), no_progress)
    return (time.perf_counter() - start) / n


def spawn(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module], env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def wait_http(url: str, within: float = 20.0) -> None:
    async with httpx.AsyncClient(timeout=1.0) as http:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.02)
    raise RuntimeError(f"{url} never answered 200")


async def completed(http: httpx.AsyncClient, worker_port: int) -> float:
    text = (await http.get(f"http://127.0.0.1:{worker_port}/metrics")).text
    for line in text.splitlines():
        if line.startswith('empq_worker_jobs_total{outcome="completed"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _redis_cpu_s(redis_url: str) -> float:
    info = redis.Redis.from_url(redis_url).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def run_once(
    base_env: dict[str, str],
    hub_http: str,
    tmp: Path,
    n: int,
    c: int,
    hub_proc: psutil.Process,
    redis_url: str,
) -> dict[str, Any]:
    """Queue n jobs, then let one worker with c slots drain them (the hub's and Redis's
    CPU over the same window too: the three processes share the machine's cores)."""
    async with httpx.AsyncClient(base_url=hub_http, timeout=30) as hub:
        job = {"type": "sim", "requirements": {"service_type": "simulation"}, "payload": {}}
        for i in range(0, n, 1000):
            reply = await hub.post("/api/jobs/batch", json={"jobs": [job] * min(1000, n - i)})
            reply.raise_for_status()
    port = free_port()
    env = dict(base_env)
    env.update(
        {
            "EMPQ_WORKER_ID": f"bench-c{c}",
            "EMPQ_CONCURRENT_JOBS": str(c),
            "EMPQ_HTTP_PORT": str(port),
            "EMPQ_SIMULATION_DURATION": "0",
            "EMPQ_LOG_LEVEL": "warning",
        }
    )
    proc = spawn("empq.worker", env, tmp / f"worker-c{c}.log")
    ps = psutil.Process(proc.pid)
    try:
        await wait_http(f"http://127.0.0.1:{port}/health")
        cpu0 = sum(ps.cpu_times()[:2])
        hub0, redis0 = sum(hub_proc.cpu_times()[:2]), _redis_cpu_s(redis_url)
        start = time.perf_counter()
        async with httpx.AsyncClient(timeout=5) as http:
            # Polling another process's counter: there is no event to await across it.
            while (done := await completed(http, port)) < n:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        wall = time.perf_counter() - start
        cpu = sum(ps.cpu_times()[:2]) - cpu0
        hub_cpu = sum(hub_proc.cpu_times()[:2]) - hub0
        redis_cpu = _redis_cpu_s(redis_url) - redis0
    finally:
        proc.terminate()
        proc.wait(30)
    return {
        "hub": "real",
        "hub_cpu_ms_per_job": 1000 * hub_cpu / n,
        "redis_cpu_ms_per_job": 1000 * redis_cpu / n,
        "concurrency": c,
        "jobs": int(done),
        "wall_s": wall,
        "jobs_per_s": n / wall,
        "worker_cpu_ms_per_job": 1000 * cpu / n,
        "wall_ms_per_job": 1000 * wall / n,
    }


class StubHub:
    """The hub's side of the worker protocol reduced to a counter: answers claims at once.

    Isolates the worker process's own cost per job from the hub's (which `bench/hub`
    measures); it runs in this process, so the worker process is measured alone.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.given = 0
        self.completed = 0
        self.done = asyncio.Event()
        self.first = asyncio.Event()

    async def _give(self, ws: Any, wanted: int) -> None:
        give = min(wanted, self.n - self.given)
        if give <= 0:
            await ws.send('{"type":"no_job_available","timestamp":0}')
            return
        self.first.set()
        for left in range(give - 1, -1, -1):
            self.given += 1
            n = self.given
            await ws.send(
                f'{{"type":"job_assigned","timestamp":0,"job_id":"j{n}","job_type":"sim",'
                f'"priority":50,"payload":{{}},"requirements":{{"service_type":"simulation"}},'
                f'"claim_token":"t{n}","claim_timeout":30,"claim_remaining":{left}}}'
            )

    async def handler(self, ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._serve(ws)

    async def _serve(self, ws: Any) -> None:
        await ws.send(json.dumps({"type": "connection_established", "timestamp": 0}))
        async for raw in ws:
            msg = json.loads(raw)
            kind = msg["type"]
            if kind == "claim_job":
                await self._give(ws, int(msg.get("max_jobs", 1)))
            elif kind == "complete_job":
                self.completed += 1
                job_id = msg["job_id"]
                await ws.send(f'{{"type":"job_completed_ack","timestamp":0,"job_id":"{job_id}"}}')
                if self.completed >= self.n:
                    self.done.set()
                if msg.get("claim_next") is not None:  # the claim the outcome carried
                    await self._give(ws, int(msg["claim_next"].get("max_jobs", 1)))
            elif kind == "register_worker":
                await ws.send(
                    json.dumps(
                        {
                            "type": "worker_registered",
                            "timestamp": 0,
                            "worker_id": msg["worker_id"],
                            "status": "idle",
                        }
                    )
                )


async def run_stub(base_env: dict[str, str], tmp: Path, n: int, c: int) -> dict[str, Any]:
    """One worker process with c slots against the stub hub, until n jobs are done."""
    from websockets.asyncio.server import serve

    stub = StubHub(n)
    port = free_port()
    async with serve(stub.handler, "127.0.0.1", port, compression=None):
        env = dict(base_env)
        env.update(
            {
                "EMPQ_HUB_URL": f"ws://127.0.0.1:{port}",
                "EMPQ_WORKER_ID": f"stub-c{c}",
                "EMPQ_CONCURRENT_JOBS": str(c),
                "EMPQ_SIMULATION_DURATION": "0",
                "EMPQ_LOG_LEVEL": "warning",
            }
        )
        proc = spawn("empq.worker", env, tmp / f"stub-c{c}.log")
        ps = psutil.Process(proc.pid)
        try:
            # Measure from the first job handed out to the last completion.
            await asyncio.wait_for(stub.first.wait(), 30)
            cpu0 = sum(ps.cpu_times()[:2])
            start = time.perf_counter()
            await asyncio.wait_for(stub.done.wait(), 300)
            wall = time.perf_counter() - start
            cpu = sum(ps.cpu_times()[:2]) - cpu0
        finally:
            proc.terminate()
            proc.wait(30)
    return {
        "hub": "stub",
        "concurrency": c,
        "jobs": stub.completed,
        "wall_s": wall,
        "jobs_per_s": n / wall,
        "worker_cpu_ms_per_job": 1000 * cpu / n,
        "wall_ms_per_job": 1000 * wall / n,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--stub-only", action="store_true", help="skip the real-hub runs")
    args = parser.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    direct = await direct_per_job(20_000)
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir, RedisServer(persistent=False) as server:
        tmp = Path(tmpdir)
        hub_port, ws_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMPQ_")}
        env.update(
            {
                "EMPQ_REDIS_URL": server.url,
                "EMPQ_HUB_PORT": str(hub_port),
                "EMPQ_WS_PORT": str(ws_port),
                "EMPQ_DATA_DIR": str(tmp / "data"),
                "EMPQ_ARTIFACT_DIR": str(tmp / "artifacts"),
                "EMPQ_LOG_LEVEL": "warning",
            }
        )
        for c in levels:
            rows.append(await run_stub(env, tmp, args.jobs, c))
        if not args.stub_only:
            hub = spawn("empq.hub", env, tmp / "hub.log")
            try:
                hub_http = f"http://127.0.0.1:{hub_port}"
                await wait_http(f"{hub_http}/ready")
                worker_env = dict(env, EMPQ_HUB_URL=f"ws://127.0.0.1:{ws_port}")
                for c in levels:
                    rows.append(
                        await run_once(
                            worker_env,
                            hub_http,
                            tmp,
                            args.jobs,
                            c,
                            psutil.Process(hub.pid),
                            server.url,
                        )
                    )
            finally:
                hub.terminate()
                hub.wait(30)
    for row in rows:
        row["overhead_ms_per_job"] = row["worker_cpu_ms_per_job"] - 1000 * direct
    if args.json:
        print(json.dumps({"direct_ms_per_job": 1000 * direct, "runs": rows}, indent=2))
        return
    print(f"direct connector call: {1000 * direct:.4f} ms/job (no queue)")
    print(
        f"{'hub':>5} {'slots':>5} {'jobs':>6} {'jobs/s':>8} {'wall ms/job':>11} "
        f"{'worker CPU ms/job':>17} {'overhead ms/job':>15} {'hub CPU':>8} {'Redis CPU':>9}"
    )
    for r in rows:
        hub_cpu = f"{r['hub_cpu_ms_per_job']:>8.3f}" if "hub_cpu_ms_per_job" in r else " " * 8
        redis_cpu = f"{r['redis_cpu_ms_per_job']:>9.3f}" if "redis_cpu_ms_per_job" in r else ""
        print(
            f"{r['hub']:>5} {r['concurrency']:>5} {r['jobs']:>6} {r['jobs_per_s']:>8.0f} "
            f"{r['wall_ms_per_job']:>11.3f} {r['worker_cpu_ms_per_job']:>17.3f} "
            f"{r['overhead_ms_per_job']:>15.3f} {hub_cpu} {redis_cpu}"
        )


if __name__ == "__main__":
    asyncio.run(main())
