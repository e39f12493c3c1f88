"""Placement benchmark: warm-model routing, VRAM packing and ETA error (issue 21).

    .venv/bin/python bench/placement.py [--jobs 1000] [--load 0.075] [--run 0.01]
        [--rates 20,50] [--phases warm,vram,eta] [--json FILE]

Runs a private redis-server and one hub process (`python -m empq.hub`) per
configuration, and real `empq` workers (`empq.worker.runtime.Worker`) in this process
with a simulated GPU connector: each worker's GPU holds 2 models; running a job whose
model is not held first "loads" it (a sleep of `--load` seconds, evicting the least
recently used), then runs it (`--run` seconds).

1. warm: 4 one-slot workers, 8 models, `--jobs` jobs whose model follows a Zipf mix
   (s = 1.1: the top model is asked for ~40% of the time), submitted one by one at
   random (Poisson) arrivals, each of `--rates` a second (20: the fleet ~40% busy when
   three jobs in five load a model; 50: it is then saturated). Routing on: the connector
   reports its warm models (`models_loaded`), so the hub wakes the parked worker holding
   the job's model (or waits `EMPQ_WARM_WAIT_SECONDS` for a busy one). Routing off: the
   same connector keeps its warmth to itself. Also on with `EMPQ_WARM_WINDOW_SECONDS=1`.
   Reported: model loads per 1,000 jobs and makespan (first submit -> last completion).
   Each submit reply's `eta_seconds` is compared with when the job actually started
   (`assigned_at - created_at`): p50 and p90 of |error|.
2. vram: one worker with 24 GB and 3 slots, a backlog of 8/12/20 GB jobs (uniform mix)
   running 0.05-0.15 s each: the VRAM reserved over time (never above 24 GB, checked at
   every change) and its time-averaged utilisation; one slot per worker would reach
   the mean job size / 24 GB (55%).
3. eta: a backlog of jobs (after a warm-up that measures run times) submitted at once to
   4 one-slot workers running 0.05 s jobs: estimated vs actual start, p50 |error|.

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
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx

from empq.config import WorkerSettings
from empq.connectors.base import Connector, JobContext, ProgressReporter
from empq.models import WorkerCapabilities
from empq.redis_server import RedisServer, free_port
from empq.worker.runtime import Worker

MODELS = [f"model-{i}" for i in range(8)]
GPU_MODELS = 2  # models one simulated GPU holds at once


@asynccontextmanager
async def hub_process(redis_url: str, workdir: Path, **env_extra: str) -> AsyncIterator[str]:
    """A hub child process on a fresh Redis database; yields (http_url, ws_url)."""
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
        **env_extra,
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
        yield http_url
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
        log.close()


def ws_of(http_url: str) -> str:
    """The hub's WebSocket URL on its HTTP port."""
    return http_url.replace("http://", "ws://") + "/ws"


class SimGpu(Connector):
    """A GPU that holds `GPU_MODELS` models: a job on another model loads it first."""

    name = "sim-gpu"
    services = ("sim",)
    warm_models_max: ClassVar[int] = GPU_MODELS

    def __init__(self, *, report: bool, load: float, run: tuple[float, float]) -> None:
        super().__init__(WorkerSettings(worker_config=None))
        self.report, self.load, self.run = report, load, run
        self.held: list[str] = []
        self.loads = 0
        self.rng = random.Random()

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        model = job.requirements.models[0] if job.requirements.models else None
        if model is not None:
            if model not in self.held:
                self.loads += 1
                await asyncio.sleep(self.load)
            self.held = [model, *(m for m in self.held if m != model)][:GPU_MODELS]
            if self.report:
                self.note_models("sim", [model])
        await asyncio.sleep(self.rng.uniform(*self.run))
        return {}


class VramMeter(SimGpu):
    """A `SimGpu` that integrates the VRAM its running jobs reserve over time."""

    def __init__(self, budget: float, run: tuple[float, float]) -> None:
        super().__init__(report=False, load=0.0, run=run)
        self.budget = budget
        self.reserved = 0.0
        self.peak = 0.0
        self.area = 0.0
        self.since: float | None = None
        self.first: float | None = None
        self.last = 0.0

    def _change(self, delta: float) -> None:
        now = time.monotonic()
        if self.since is not None:
            self.area += self.reserved * (now - self.since)
        self.first = now if self.first is None else self.first
        self.since, self.last = now, now
        self.reserved += delta
        self.peak = max(self.peak, self.reserved)
        assert self.reserved <= self.budget + 1e-9, f"{self.reserved} GB reserved"

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        gb = job.requirements.hardware.gpu_memory_gb or 0.0
        self._change(gb)
        try:
            return await super().process(job, progress)
        finally:
            self._change(-gb)

    @property
    def utilisation(self) -> float:
        span = (self.last - self.first) if self.first is not None else 0.0
        return self.area / (self.budget * span) if span else 0.0


def worker(http_url: str, wid: str, connector: Connector, **caps: Any) -> Worker:
    """A real worker (not started) for the bench's simulated service."""
    settings = WorkerSettings(
        hub_url=ws_of(http_url),
        worker_id=wid,
        heartbeat_interval=5,
        worker_config=None,
        claim_wait=20,
        concurrent_jobs=caps.get("performance", {}).get("concurrent_jobs", 1),
    )
    capabilities = WorkerCapabilities.model_validate(
        {"services": ["sim"], "models": {"sim": MODELS}, **caps}
    )
    return Worker(settings, capabilities=capabilities, connectors=[connector], stop=asyncio.Event())


@asynccontextmanager
async def running(workers: list[Worker]) -> AsyncIterator[None]:
    """Run the workers until the block ends (then drain them)."""
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        for w in workers:
            await asyncio.wait_for(w.registered.wait(), 15)
        yield
    finally:
        for w in workers:
            w.request_stop()
        await asyncio.gather(*tasks, return_exceptions=True)


async def wait_completed(http: httpx.AsyncClient, n: int, within: float = 600) -> None:
    """Until the hub has completed `n` jobs (polled: a bench, not a test)."""
    deadline = time.monotonic() + within
    while (await http.get("/api/stats")).json()["completed_total"] < n:
        if time.monotonic() > deadline:
            raise TimeoutError("jobs did not complete")
        await asyncio.sleep(0.05)


async def job_times(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every job (up to 1,000 a page) with its hub times."""
    jobs: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/api/jobs", params=params)).json()
        jobs += page["jobs"]
        cursor = page["next_cursor"]
        if not cursor:
            return jobs


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def eta_errors(etas: dict[str, float | None], jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """p50/p90 |estimated start - actual start| over the jobs that had an estimate."""
    errors = []
    for j in jobs:
        est = etas.get(j["id"])
        if est is None or not j.get("assigned_at"):
            continue
        errors.append(abs(est - (_ts(j["assigned_at"]) - _ts(j["created_at"]))))
    if not errors:
        return {"eta_samples": 0}
    errors.sort()
    return {
        "eta_samples": len(errors),
        "eta_abs_error_p50_s": round(statistics.median(errors), 4),
        "eta_abs_error_p90_s": round(errors[int(0.9 * (len(errors) - 1))], 4),
    }


# --------------------------------------------------------------------------- phases


async def warm_phase(
    redis_url: str,
    tmp: Path,
    n: int,
    load: float,
    run: float,
    rate: float,
    *,
    report: bool,
    window: float,
) -> dict[str, Any]:
    """4 one-slot workers, 8 models, Zipf mix, Poisson arrivals: loads and makespan."""
    rng = random.Random(21)
    weights = [1 / (k + 1) ** 1.1 for k in range(len(MODELS))]
    models = rng.choices(MODELS, weights, k=n)
    gap = 1 / rate
    env = {"EMPQ_WARM_WINDOW_SECONDS": str(window)} if window else {}
    conns = [SimGpu(report=report, load=load, run=(run, run)) for _ in range(4)]
    async with (
        hub_process(redis_url, tmp, **env) as http_url,
        httpx.AsyncClient(base_url=http_url) as http,
    ):
        workers = [worker(http_url, f"gpu-{i}", c) for i, c in enumerate(conns)]
        async with running(workers):
            etas: dict[str, float | None] = {}
            start = time.monotonic()
            for model in models:
                body = {"type": "gen", "requirements": {"service_type": "sim", "models": [model]}}
                reply = (await http.post("/api/jobs", json=body)).json()
                etas[reply["job_id"]] = reply.get("eta_seconds")
                await asyncio.sleep(rng.expovariate(1 / gap))
            await wait_completed(http, n)
            makespan = time.monotonic() - start
        jobs = await job_times(http)
    loads = sum(c.loads for c in conns)
    return {
        "jobs": n,
        "model_loads": loads,
        "loads_per_1000_jobs": round(loads * 1000 / n, 1),
        "makespan_s": round(makespan, 2),
        **eta_errors(etas, jobs),
    }


async def vram_phase(redis_url: str, tmp: Path, n: int) -> dict[str, Any]:
    """One 24 GB, 3-slot worker drains a backlog of 8/12/20 GB jobs."""
    rng = random.Random(24)
    meter = VramMeter(24, (0.05, 0.15))
    async with (
        hub_process(redis_url, tmp) as http_url,
        httpx.AsyncClient(base_url=http_url) as http,
    ):
        w = worker(
            http_url,
            "gpu24",
            meter,
            hardware={"gpu_memory_gb": 24},
            performance={"concurrent_jobs": 3},
        )
        async with running([w]):
            jobs = [
                {
                    "type": "gen",
                    "requirements": {
                        "service_type": "sim",
                        "hardware": {"gpu_memory_gb": rng.choice([8, 12, 20])},
                    },
                }
                for _ in range(n)
            ]
            start = time.monotonic()
            await http.post("/api/jobs/batch", json={"jobs": jobs})
            await wait_completed(http, n)
            makespan = time.monotonic() - start
    return {
        "jobs": n,
        "budget_gb": 24,
        "peak_reserved_gb": meter.peak,
        "vram_utilisation": round(meter.utilisation, 3),
        "one_slot_utilisation": round((8 + 12 + 20) / 3 / 24, 3),
        "makespan_s": round(makespan, 2),
    }


async def eta_phase(redis_url: str, tmp: Path, n: int) -> dict[str, Any]:
    """A backlog on 4 workers with measured run times: estimated vs actual start."""
    conns = [SimGpu(report=False, load=0.0, run=(0.04, 0.06)) for _ in range(4)]
    body = {"type": "gen", "requirements": {"service_type": "sim"}}
    async with (
        hub_process(redis_url, tmp) as http_url,
        httpx.AsyncClient(base_url=http_url) as http,
    ):
        workers = [worker(http_url, f"gpu-{i}", c) for i, c in enumerate(conns)]
        async with running(workers):
            # Warm-up: each worker completes a few jobs, so its run time is measured.
            await http.post("/api/jobs/batch", json={"jobs": [body] * 20})
            await wait_completed(http, 20)
            etas: dict[str, float | None] = {}
            for _ in range(n):
                reply = (await http.post("/api/jobs", json=body)).json()
                etas[reply["job_id"]] = reply.get("eta_seconds")
            await wait_completed(http, 20 + n)
        jobs = await job_times(http)
    return {"jobs": n, **eta_errors(etas, jobs)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--load", type=float, default=0.075, help="seconds to load a model")
    parser.add_argument("--run", type=float, default=0.01, help="seconds to run a job")
    parser.add_argument(
        "--rates", default="20,50", help="job arrivals per second, one warm run set each"
    )
    parser.add_argument("--phases", default="warm,vram,eta")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    results: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis = stack.enter_context(RedisServer(persistent=False))
        db = iter(range(16))

        def fresh() -> str:
            return f"{redis.url.rsplit('/', 1)[0]}/{next(db)}"

        for rate in [float(r) for r in args.rates.split(",")] if "warm" in phases else []:
            for name, report, window in (
                ("routing_off", False, 0.0),
                ("routing_on", True, 0.0),
                ("routing_on_window_1s", True, 1.0),
            ):
                key = f"rate_{rate:g}/{name}"
                results[key] = await warm_phase(
                    fresh(),
                    tmp,
                    args.jobs,
                    args.load,
                    args.run,
                    rate,
                    report=report,
                    window=window,
                )
                print(key, results[key], flush=True)
            on = results[f"rate_{rate:g}/routing_on"]["model_loads"]
            off = results[f"rate_{rate:g}/routing_off"]["model_loads"]
            results[f"rate_{rate:g}/load_reduction_x"] = round(off / max(on, 1), 2)
        if "vram" in phases:
            results["vram"] = await vram_phase(fresh(), tmp, 300)
            print("vram", results["vram"], flush=True)
        if "eta" in phases:
            results["eta_backlog"] = await eta_phase(fresh(), tmp, 200)
            print("eta_backlog", results["eta_backlog"], flush=True)
    print()
    print("| run | figure | value |")
    print("|---|---|---|")
    for run_name, figures in results.items():
        if isinstance(figures, dict):
            for key, value in figures.items():
                print(f"| {run_name} | {key} | {value} |")
        else:
            print(f"| {run_name} | | {figures} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
