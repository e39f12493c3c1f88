"""The worker's side of the hub connection: the current socket and the outcomes it owes.

Progress and heartbeats are best effort: lost if the socket is down. A job's outcome
(`complete_job` / `fail_job` / `release_job`) is kept in the `Outbox` until the hub
acknowledges or refuses it, and is sent again (same claim token) after an
`UNAVAILABLE` answer, after a silence, and on every new connection, so a result
produced while the hub or its Redis was away still reaches it.
"""

from __future__ import annotations

import asyncio
import logging

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from empq.protocol import Message, WorkerHeartbeat
from empq.worker.outbox import Outbox

log = logging.getLogger(__name__)


class HubLink:
    """The socket to the hub, when there is one, plus the unacknowledged outcomes."""

    def __init__(self) -> None:
        self.ws: ClientConnection | None = None
        self.outbox = Outbox()
        #: Heartbeats sent, and those the hub acknowledged (it recorded them), in order.
        self.heartbeats_sent = 0
        self.heartbeat_acks = 0
        self._acked = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self.ws is not None

    @property
    def owed_jobs(self) -> list[str]:
        """Jobs whose outcome the hub has not yet answered."""
        return self.outbox.jobs

    async def send(self, message: Message) -> bool:
        """Send now if connected; False when the message could not go out."""
        sent = await self._send_text(message.dump())
        if sent and isinstance(message, WorkerHeartbeat):
            self.heartbeats_sent += 1
        return sent

    async def _send_text(self, text: str) -> bool:
        ws = self.ws
        if ws is None:
            return False
        try:
            await ws.send(text)
        except ConnectionClosed:
            return False
        return True

    async def send_outcome(self, job_id: str, text: str) -> None:
        """Owe the outcome `text` until the hub answers it; send it now if connected."""
        self.outbox.add(job_id, text)
        await self.outbox.deliver(self.outbox.first(job_id), self._send_text)

    def settle(self, job_id: str) -> bool:
        """The hub answered the outcome of `job_id` (ack, or refused it); True if owed."""
        return self.outbox.settle(job_id)

    def unavailable(self, job_id: str) -> bool:
        """The hub could not record `job_id`'s outcome now; True if it is owed (kept)."""
        return self.outbox.unavailable(job_id)

    async def resend_owed(self) -> None:
        """After a reconnect: send every outcome still owed again."""
        await self.outbox.deliver(self.outbox.everything(), self._send_text)

    async def resend_due(self) -> None:
        """Send again the outcomes whose back-off or answer timeout has passed."""
        if self.ws is not None:
            await self.outbox.deliver(self.outbox.due(), self._send_text)

    def heartbeat_acked(self) -> None:
        """The hub acknowledged a heartbeat."""
        self.heartbeat_acks += 1
        self._acked.set()
        self._acked = asyncio.Event()

    async def wait_heartbeat_acks(self, count: int) -> None:
        """Until the hub has acknowledged `count` heartbeats in all."""
        while self.heartbeat_acks < count:
            await self._acked.wait()

    async def close(self) -> None:
        """Close the socket normally (code 1000), as a worker leaving on purpose does."""
        ws = self.ws
        if ws is not None:
            await ws.close()

    async def wait_settled(self, within: float) -> bool:
        """Wait until every owed outcome was answered; False if some still are not."""
        return await self.outbox.wait_settled(within)
