"""Helpers to run workers against a real hub: in this event loop, or as child processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from empq.config import WorkerSettings
from empq.connectors.base import Connector, JobContext, ProgressReporter
from empq.models import WorkerCapabilities
from empq.worker.runtime import Worker
from tests.support.child_output import ChildOutput
from tests.support.hub_fixtures import RawPeer

WAIT = 10.0


def worker_settings(ws_url: str, **overrides: Any) -> WorkerSettings:
    """Settings for a test worker: fast simulation, fast heartbeats, no file config."""
    values: dict[str, Any] = {
        "hub_url": ws_url,
        "worker_id": f"w-{uuid.uuid4().hex[:8]}",
        "simulation_duration": 0.0,
        "heartbeat_interval": 1.0,
        "shutdown_grace": 5.0,
        "worker_config": None,
    }
    values.update(overrides)
    return WorkerSettings(**values)


@contextlib.asynccontextmanager
async def running_worker(
    ws_url: str,
    *,
    connectors: list[Connector] | None = None,
    services: list[str] | None = None,
    concurrent_jobs: int = 1,
    **overrides: Any,
) -> AsyncIterator[Worker]:
    """A worker in this event loop, registered with the hub; drained on exit."""
    settings = worker_settings(ws_url, concurrent_jobs=concurrent_jobs, **overrides)
    caps = WorkerCapabilities(services=services or ["simulation"])
    caps.performance.concurrent_jobs = concurrent_jobs
    worker = Worker(settings, capabilities=caps, connectors=connectors, stop=asyncio.Event())
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(WAIT):
            registered = asyncio.create_task(worker.registered.wait())
            done, _ = await asyncio.wait({registered, task}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                registered.cancel()
                task.result()
        yield worker
    finally:
        worker.request_stop()
        async with asyncio.timeout(WAIT + settings.shutdown_grace):
            await task


@dataclass
class WorkerProcess:
    """`python -m empq.worker` as a child process."""

    proc: subprocess.Popen[bytes]
    output: ChildOutput
    worker_id: str

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait(self, within: float = WAIT) -> int:
        return await asyncio.to_thread(self.proc.wait, within)

    def log(self) -> str:
        return self.output.text()


async def stop_workers(workers: list[WorkerProcess], within: float = 30) -> None:
    """SIGTERM every worker still running, then wait for each; one that does not exit
    within `within` s is killed (the test's verdict stands either way)."""
    for w in workers:
        if w.proc.poll() is None:
            w.proc.terminate()
    for w in workers:
        try:
            await w.wait(within)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            await w.wait(within)


def start_worker_process(tmp: Path, ws_url: str, **env: str) -> WorkerProcess:
    """Start a worker child process configured by `EMPQ_*` variables."""
    worker_id = env.pop("EMPQ_WORKER_ID", f"p-{uuid.uuid4().hex[:8]}")
    full = {k: v for k, v in os.environ.items() if not k.startswith("EMPQ_")}
    full.update(
        {
            "EMPQ_HUB_URL": ws_url,
            "EMPQ_WORKER_ID": worker_id,
            "EMPQ_SIMULATION_DURATION": "0",
            "EMPQ_HEARTBEAT_INTERVAL": "1",
            "EMPQ_LOG_LEVEL": "info",
        }
    )
    full.update(env)
    log_path = tmp / f"{worker_id}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "empq.worker"],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return WorkerProcess(proc, ChildOutput(proc, log_path), worker_id)


async def submit(client: Any, **fields: Any) -> str:
    """Submit one job over REST; returns its id."""
    fields.setdefault("type", "sim")
    fields.setdefault("requirements", {"service_type": "simulation"})
    reply = await client.post("/api/jobs", json=fields)
    assert reply.status_code == 201, reply.text
    job_id: str = reply.json()["job_id"]
    return job_id


async def wait_for_job(
    client: Any, job_id: str, *statuses: str, within: float = WAIT
) -> dict[str, Any]:
    """The job record once its status is one of `statuses`.

    Subscribes to the job's events on the hub's WebSocket first, then reads the record
    over REST once and again after each event about the job, so it wakes on the change
    itself and cannot miss one that happened before it subscribed.
    """
    wanted = set(statuses) or {"completed", "failed", "timeout", "cancelled"}
    ws_url = str(client.base_url).replace("http://", "ws://").rstrip("/") + "/ws"
    last: dict[str, Any] = {}
    try:
        async with asyncio.timeout(within), RawPeer.connect(ws_url) as peer:
            await peer.request(
                {"type": "subscribe_job", "job_id": job_id}, "job_notifications_subscribed"
            )
            while True:
                last = (await client.get(f"/api/jobs/{job_id}")).json()
                if last.get("status") in wanted:
                    return last
                while (await peer.recv(within)).get("job_id") != job_id:
                    pass
    except TimeoutError:
        raise AssertionError(f"job {job_id} never reached {wanted}; last: {last}") from None


class GateConnector(Connector):
    """A connector whose jobs report 50 % and then wait for `gate`; records what happens."""

    name = "gate"
    services = ("simulation",)
    # Its gate and condition are shared with the test's own loop: it must run there.
    shares_worker_loop = True

    def __init__(self, settings: WorkerSettings | None = None, *, upload: bool = True) -> None:
        super().__init__(settings)
        self.upload = upload
        self.gate = asyncio.Event()
        self.active = 0
        self.peak = 0
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.changed = asyncio.Condition()

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        async with self.changed:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.started.append(job.id)
            self.changed.notify_all()
        try:
            await progress(50, "half way")
            await self.gate.wait()
            if not self.upload:
                return {"output_files": []}
            url = await job.artifacts.save("out.txt", f"result of {job.id}".encode(), "text/plain")
            return {"output_files": [url]}
        finally:
            async with self.changed:
                self.active -= 1
                self.changed.notify_all()

    async def cancel(self, job: JobContext) -> None:
        self.cancelled.append(job.id)

    async def wait_active(self, count: int, within: float = WAIT) -> None:
        """Until `count` jobs are inside `process` at once."""
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(lambda: self.active >= count)
