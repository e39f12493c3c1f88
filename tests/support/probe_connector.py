"""A connector for worker child processes that tells the test when a job starts and
when it is told to stop (POSTs to `$PROBE_URL/started/<job>` and `/cancelled/<job>`).

Its jobs block until cancelled, as a long GPU job does.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx

from empq.connectors.base import Connector, JobContext, ProgressReporter


class ProbeConnector(Connector):
    name = "probe"
    services = ("simulation",)

    async def start(self) -> None:
        self.http = httpx.AsyncClient(base_url=os.environ["PROBE_URL"], timeout=5)

    async def close(self) -> None:
        await self.http.aclose()

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        await self.http.post(f"/started/{job.id}")
        await asyncio.Event().wait()  # until cancelled
        return {}

    async def cancel(self, job: JobContext) -> None:
        await self.http.post(f"/cancelled/{job.id}")
