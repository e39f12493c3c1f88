"""Outcomes the worker owes the hub, kept until the hub acknowledges or refuses each one.

A job's outcome (`complete_job`, `fail_job`, `release_job`) is the one message that
must not be lost: without it the job stays `in_progress` at the hub until its
`timeout_minutes`. So each is kept here, under its job id, and sent again, with the
same claim token, until the hub answers it:

- an ack (`job_completed_ack`, `job_failed_ack`, `job_released_ack`) settles it;
- a refusal (an `error` naming the job: stale claim, already final) settles it too,
  there is nothing left to deliver;
- `UNAVAILABLE` (the hub's Redis is down) keeps it, and it goes again after a
  back-off (0.5 s doubling to 30 s, with jitter);
- no answer within `ANSWER_TIMEOUT` (a reply lost with a hub restart) sends it again;
- a new connection sends everything still owed at once.

Resending is safe: the hub applies an outcome once per claim token and refuses the
copies. Nothing here gives up while the worker runs; the worker's free slots never
wait on this (a finished job leaves `Worker.jobs` at once), and the job ids stay in
`current_jobs` of registrations and heartbeats so the hub keeps them held meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

RETRY_MIN = 0.5
RETRY_MAX = 30.0
#: An outcome sent without any answer for this long is sent again.
ANSWER_TIMEOUT = 15.0


def retry_delay(failures: int, rng: random.Random | None = None) -> float:
    """Seconds before sending an outcome again after `failures` UNAVAILABLE answers."""
    ceiling = min(RETRY_MAX, RETRY_MIN * 2 ** min(max(failures - 1, 0), 16))
    return (rng or random).uniform(ceiling / 2, ceiling)


@dataclass(slots=True)
class Owed:
    """One outcome not yet answered.

    `first` is the message as first sent; `text` is what goes out again: without the
    `claim_next` the first send carried, since that claim was answered (or given up)
    on the connection it went out on. It is made only when needed (most outcomes are
    acknowledged at once, and never go again).
    """

    first: str
    sends: int = 0
    unavailable: int = 0
    #: Monotonic time at which to send it again (`inf`: only on the next connection).
    due: float = 0.0
    _again: str | None = None

    @property
    def text(self) -> str:
        if self._again is None:
            self._again = _without_claim(self.first)
        return self._again


class Outbox:
    """The owed outcomes, and when each should go again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._owed: dict[str, Owed] = {}
        self._all_settled = asyncio.Event()
        self._all_settled.set()
        #: How often outcomes were sent again (for tests and logs).
        self.resends = 0
        self._resent = asyncio.Condition()

    @property
    def jobs(self) -> list[str]:
        """Jobs whose outcome the hub has not answered yet."""
        return list(self._owed)

    def add(self, job_id: str, text: str) -> Owed:
        """Owe the outcome `text` of `job_id` (replacing an older one)."""
        entry = Owed(text)
        self._owed[job_id] = entry
        self._all_settled.clear()
        return entry

    def sent(self, job_id: str, delivered: bool) -> None:
        """`job_id`'s outcome went out (or could not: the socket was down)."""
        entry = self._owed.get(job_id)
        if entry is None:
            return
        entry.sends += 1
        # Undelivered: it goes with the next connection's resend; delivered: wait for
        # the answer, and send again if none comes.
        entry.due = self._clock() + ANSWER_TIMEOUT if delivered else float("inf")

    def settle(self, job_id: str) -> bool:
        """The hub answered `job_id`'s outcome (ack or refusal); True if it was owed."""
        if self._owed.pop(job_id, None) is None:
            return False
        if not self._owed:
            self._all_settled.set()
        return True

    def carried_claim(self, job_id: str) -> bool:
        """Whether the last send of `job_id`'s outcome carried a `claim_next`."""
        entry = self._owed.get(job_id)
        return entry is not None and entry.sends == 1 and entry.first != entry.text

    def unavailable(self, job_id: str) -> bool:
        """The hub could not record `job_id`'s outcome now; True if it was owed."""
        entry = self._owed.get(job_id)
        if entry is None:
            return False
        entry.unavailable += 1
        entry.due = self._clock() + retry_delay(entry.unavailable)
        log.info(
            "hub could not record the outcome of job %s (storage unavailable); "
            "sending it again in %.1f s",
            job_id,
            entry.due - self._clock(),
        )
        return True

    def due(self) -> list[tuple[str, str]]:
        """`(job_id, text)` of the outcomes whose time to go again has come."""
        now = self._clock()
        return [(job_id, e.text) for job_id, e in self._owed.items() if e.due <= now]

    def everything(self) -> list[tuple[str, str]]:
        """Every owed outcome, for a fresh connection."""
        return [(job_id, e.text) for job_id, e in self._owed.items()]

    def first(self, job_id: str) -> list[tuple[str, str]]:
        """`job_id`'s outcome as first sent (with the claim it carries)."""
        entry = self._owed.get(job_id)
        return [] if entry is None else [(job_id, entry.first)]

    async def deliver(
        self, items: list[tuple[str, str]], send: Callable[[str], Awaitable[bool]]
    ) -> None:
        """Send `items` through `send` (False: not delivered) and note each."""
        for job_id, text in items:
            if job_id not in self._owed:
                continue  # answered meanwhile
            entry = self._owed[job_id]
            again = entry.sends > 0
            self.sent(job_id, await send(text))
            if again:
                async with self._resent:
                    self.resends += 1
                    self._resent.notify_all()

    async def wait_resends(self, count: int) -> None:
        """Until outcomes were sent again `count` times in all."""
        async with self._resent:
            await self._resent.wait_for(lambda: self.resends >= count)

    async def wait_settled(self, within: float) -> bool:
        """Until every owed outcome was answered; False if some still were not in time."""
        try:
            async with asyncio.timeout(within):
                await self._all_settled.wait()
        except TimeoutError:
            return False
        return True


def _without_claim(text: str) -> str:
    """The outcome message `text` without its `claim_next`."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict) or data.get("claim_next") is None:
        return text
    data.pop("claim_next")
    return json.dumps(data, separators=(",", ":"))
