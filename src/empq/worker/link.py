"""The worker's side of the hub connection: the current socket and the outcomes it owes.

Progress and heartbeats are best effort: lost if the socket is down. A job's outcome
(`complete_job` / `fail_job`) is kept until the hub acknowledges it (or refuses it
with an `error` naming the job), and is sent again after every reconnect, so a
result produced while the hub was away still reaches it under the same claim.
"""

from __future__ import annotations

import asyncio
import logging

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from empq.protocol import Message

log = logging.getLogger(__name__)

#: An outcome sent on this many connections without an answer is given up.
MAX_OUTCOME_SENDS = 5


class HubLink:
    """The socket to the hub, when there is one, plus the unacknowledged outcomes."""

    def __init__(self) -> None:
        self.ws: ClientConnection | None = None
        self._owed: dict[str, tuple[str, int]] = {}
        self._all_settled = asyncio.Event()
        self._all_settled.set()

    @property
    def connected(self) -> bool:
        return self.ws is not None

    @property
    def owed_jobs(self) -> list[str]:
        """Jobs whose outcome the hub has not yet acknowledged."""
        return list(self._owed)

    async def send(self, message: Message) -> bool:
        """Send now if connected; False when the message could not go out."""
        return await self._send_text(message.dump())

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
        self._owed[job_id] = (text, 1)
        self._all_settled.clear()
        await self._send_text(text)

    def settle(self, job_id: str) -> None:
        """The hub answered the outcome of `job_id` (ack, or refused it)."""
        if self._owed.pop(job_id, None) is not None and not self._owed:
            self._all_settled.set()

    async def resend_owed(self) -> None:
        """After a reconnect: send every outcome still owed again."""
        for job_id, (text, sends) in list(self._owed.items()):
            if sends >= MAX_OUTCOME_SENDS:
                log.warning("giving up on delivering the outcome of job %s", job_id)
                self.settle(job_id)
                continue
            self._owed[job_id] = (text, sends + 1)
            await self._send_text(text)

    async def close(self) -> None:
        """Close the socket normally (code 1000), as a worker leaving on purpose does."""
        ws = self.ws
        if ws is not None:
            await ws.close()

    async def wait_settled(self, within: float) -> bool:
        """Wait until every owed outcome was answered; False if some still are not."""
        try:
            async with asyncio.timeout(within):
                await self._all_settled.wait()
        except TimeoutError:
            return False
        return True
