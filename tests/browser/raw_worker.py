"""A worker that speaks the raw WebSocket protocol (CONTRACT §4), for the browser tests.

It does not use the worker package, so the dashboard's tests depend only on the hub:
register, claim a job when told one is available, accept it, send progress ticks the
test releases one at a time, then complete. Each step waits on a hub reply or a test
event, never on a sleep.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

REPLY_TIMEOUT = 10.0


@dataclass
class RawWorker:
    """One connected worker; `inbox` holds every message the hub sent it."""

    worker_id: str
    ws: ClientConnection
    inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    async def send(self, message_type: str, **fields: Any) -> None:
        """Send one protocol message."""
        message = {"type": message_type, "worker_id": self.worker_id, **fields}
        await self.ws.send(json.dumps(message))

    async def expect(self, *types: str, within: float = REPLY_TIMEOUT) -> dict[str, Any]:
        """The next message of one of `types`, skipping others (pings, job_available...)."""
        async with asyncio.timeout(within):
            while True:
                msg = await self.inbox.get()
                if msg.get("type") in types:
                    return msg

    async def claim(self) -> dict[str, Any]:
        """Claim one job and accept it; returns the `job_assigned` message."""
        await self.send("claim_job", max_jobs=1)
        assigned = await self.expect("job_assigned", "no_job_available")
        if assigned["type"] != "job_assigned":
            raise AssertionError(f"no job for {self.worker_id}: {assigned}")
        await self.send(
            "job_accepted_by_worker", job_id=assigned["job_id"], claim_token=assigned["claim_token"]
        )
        return assigned

    async def progress(self, job: dict[str, Any], percent: float, message: str = "") -> None:
        """Report progress on a claimed job."""
        await self.send(
            "update_job_progress",
            job_id=job["job_id"],
            claim_token=job["claim_token"],
            progress=percent,
            message=message or f"step {int(percent)}%",
        )

    async def complete(self, job: dict[str, Any], result: dict[str, Any] | None = None) -> None:
        """Complete a claimed job and wait for the hub's acknowledgement."""
        await self.send(
            "complete_job",
            job_id=job["job_id"],
            claim_token=job["claim_token"],
            result=result or {"simulated": True, "output_files": []},
            processing_time=0.5,
        )
        await self.expect("job_completed_ack")

    async def fail(self, job: dict[str, Any], error: str, *, retry: bool) -> dict[str, Any]:
        """Fail a claimed job; returns the hub's `job_failed_ack`."""
        await self.send(
            "fail_job",
            job_id=job["job_id"],
            claim_token=job["claim_token"],
            error=error,
            retry=retry,
            error_details={"error_type": "out_of_memory", "retryable": retry},
        )
        return await self.expect("job_failed_ack")

    async def heartbeat(self, current_jobs: list[str], status: str = "busy") -> None:
        """Send a heartbeat with connector health, and wait for the ack."""
        await self.send(
            "worker_heartbeat",
            status=status,
            current_jobs=current_jobs,
            connector_status={"simulation": {"status": "healthy"}},
        )
        await self.expect("worker_heartbeat_ack")


async def _pump(worker: RawWorker) -> None:
    async for raw in worker.ws:
        await worker.inbox.put(json.loads(raw))


@asynccontextmanager
async def raw_worker(
    ws_url: str, worker_id: str, services: list[str] | None = None
) -> AsyncIterator[RawWorker]:
    """A registered worker for the body of the `async with`; disconnects gracefully after."""
    async with websockets.connect(ws_url) as ws:
        worker = RawWorker(worker_id, ws)
        pump = asyncio.create_task(_pump(worker))
        try:
            await worker.expect("connection_established")
            await worker.send(
                "register_worker",
                capabilities={
                    "services": services or ["simulation"],
                    "hardware": {"gpu_model": "RTX 4090", "gpu_memory_gb": 24, "cpu_cores": 16},
                    "models": {"simulation": ["sim-v1"]},
                },
                status="idle",
            )
            await worker.expect("worker_registered")
            yield worker
            await worker.send("disconnect", reason="test finished")
        finally:
            pump.cancel()
            with suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await pump
