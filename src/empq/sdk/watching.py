"""Following one job over the hub's WebSocket, surviving reconnects (`AsyncClient.watch`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from empq.errors import HubUnavailable
from empq.models import Job
from empq.protocol import SubscribeJob
from empq.sdk.socket import Backoff, decode, open_socket, recv_until
from empq.status import ACTIVE_STATUSES, JobStatus

_EVENT_TYPES = frozenset({"job_update", "job_completed", "job_failed", "job_progress"})

#: Job fields whose change makes a new snapshot worth yielding.
_VISIBLE = ("status", "progress", "message", "worker_id", "attempts", "result", "error")


def job_is_final(job: Job) -> bool:
    """Whether `job` will not change again without an explicit retry."""
    return job.is_final


class JobStream:
    """The snapshots of one job: events from a `subscribe_job` socket, REST to resync.

    After every (re)connect the job is re-read over REST, so whatever happened while
    the socket was down is seen; if no event arrives for `poll_interval` seconds the
    job is re-read too, so a lost event delays an update but never hangs a watcher.
    """

    def __init__(
        self,
        job_id: str,
        *,
        ws_url: str,
        api_key: str | None,
        get: Callable[[str], Awaitable[Job]],
        poll_interval: float,
    ) -> None:
        self.job_id = job_id
        self.last: Job | None = None
        self._ws_url = ws_url
        self._api_key = api_key
        self._get = get
        self._poll_interval = poll_interval
        self._ws: ClientConnection | None = None
        self._backoff = Backoff()
        self._first = True

    async def next(self) -> Job:
        """The next snapshot that differs from the last one returned."""
        if self.last is None:
            # an unknown job or a hub that is down fails here at once, without reconnecting
            self.last = await self._get(self.job_id)
            if job_is_final(self.last):
                self._first = False
                return self.last
        while True:
            try:
                if self._ws is None:
                    await self._connect()
                    job = await self._get(self.job_id)
                else:
                    job = await self._next_event(self._ws, self.last)
            except (HubUnavailable, ConnectionClosed, OSError, TimeoutError) as exc:
                await self._drop()
                await self._backoff.wait(exc)
                continue
            if self._first or any(getattr(self.last, k) != getattr(job, k) for k in _VISIBLE):
                self._first = False
                self.last = job
                return job
            self.last = job

    async def _connect(self) -> None:
        ws = await open_socket(self._ws_url, self._api_key)
        self._ws = ws
        await ws.send(SubscribeJob(type="subscribe_job", job_id=self.job_id).dump())
        await recv_until(ws, "job_notifications_subscribed")
        self._backoff.reset()

    async def _next_event(self, ws: ClientConnection, job: Job) -> Job:
        try:
            async with asyncio.timeout(self._poll_interval):
                while True:
                    message = decode(await ws.recv())
                    if message is None or message.get("job_id") != job.id:
                        continue
                    if message.get("type") in _EVENT_TYPES:
                        break
        except TimeoutError:
            return await self._get(job.id)
        updated = _apply(job, message)
        if updated is None or updated.status not in (JobStatus.QUEUED, *ACTIVE_STATUSES):
            # an ending carries what an event does not (result, error, times): read it all
            return await self._get(job.id)
        return updated

    async def _drop(self) -> None:
        if self._ws is not None:
            ws, self._ws = self._ws, None
            await ws.close()

    async def aclose(self) -> None:
        """Close the socket."""
        await self._drop()


def _apply(job: Job, event: Mapping[str, Any]) -> Job | None:
    """The snapshot after a `job_update`-style event, or None if it needs a full re-read."""
    if event.get("type") not in ("job_update", "job_progress"):
        return None
    update: dict[str, Any] = {}
    if "status" in event:
        try:
            update["status"] = JobStatus(event["status"])
        except ValueError:
            return None
    for key in ("progress", "message", "worker_id"):
        if event.get(key) is not None:
            update[key] = event[key]
    return job.model_copy(update=update)
