"""One connection to the hub, from hello to close: register, then read, claim and heartbeat.

One `claim_job` asks for every free slot at once (`max_jobs`) and waits on the hub for
up to `claim_wait` seconds (`wait_seconds`): the hub answers the moment a job the worker
may run is queued. Its reply is one `no_job_available`, or one `job_assigned` per job
given, each saying how many more follow (`claim_remaining`, 0 on the last), so the
worker always knows how many slots its unanswered claims may still fill. A finished
job's outcome carries the next claim (`claim_next`), so a busy worker gets its next job
in the same round trip. A `job_available` (sent to idle workers without a waiting
claim) claims at once; a wait that ends claims again; otherwise a back-off poll
(0.2 s doubling to 5 s) is the fallback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from empq.eager import start_eagerly
from empq.errors import AuthError, HubUnavailable
from empq.protocol import ClaimNext, WorkerHeartbeat, WorkerStatusMessage
from empq.worker.answers import ACKS, acknowledged, refused
from empq.worker.capabilities import system_info
from empq.worker.messages import (
    CancelJobOrder,
    HubError,
    JobAssigned,
    ServerDisconnect,
    Welcome,
)

if TYPE_CHECKING:
    from empq.worker.runtime import Worker

log = logging.getLogger("empq.worker.session")

POLL_MIN = 0.2
POLL_MAX = 5.0
#: An unanswered claim is forgotten after this long, so a lost reply cannot stall claiming.
CLAIM_REPLY_TIMEOUT = 10.0
REGISTER_TIMEOUT = 10.0


class _Closed(Exception):
    """The socket closed: ends the session's task group."""


class Session:
    """The worker's life on one WebSocket connection."""

    def __init__(self, worker: Worker, ws: ClientConnection) -> None:
        self.worker = worker
        self.ws = ws
        #: Per unanswered `claim_job`, how many more jobs its reply may still bring.
        self.claims: deque[int] = deque()
        self.outstanding_since = 0.0
        #: A claim was wanted while one was in flight: claim again once it is answered.
        self.rewake = False
        self.poll_delay = POLL_MIN
        self._sends: set[asyncio.Task[None]] = set()

    async def run(self) -> bool:
        """Serve the connection until it closes; True if registration succeeded."""
        w = self.worker
        await self._register()
        w.link.ws = self.ws
        w.session = self
        w.registered.set()
        async with w.link_changed:
            w.registrations += 1
            w.link_changed.notify_all()
        w.metrics.connected.set(1)
        log.info("registered with hub %s as %s", w.settings.hub_url, w.worker_id)
        await w.link.resend_owed()
        if w.draining:
            await w.link.send(self._status_message())
        w.claim_wanted.set()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._claimer())
                tg.create_task(self._heartbeats())
                tg.create_task(w.progress_flusher())
                await self._reader()
                raise _Closed
        except* (_Closed, ConnectionClosed):
            pass  # the socket is gone; the worker reconnects
        finally:
            if w.session is self:
                w.session = None
        return True

    async def _register(self) -> None:
        w = self.worker
        await self.ws.send(w.registration().dump())
        try:
            async with asyncio.timeout(REGISTER_TIMEOUT):
                while True:
                    msg = _decode(await self.ws.recv())
                    kind = msg.get("type")
                    if kind in ("connection_established", "worker_registered"):
                        w.welcomed(Welcome.model_validate(msg))
                        if kind == "worker_registered":
                            return
                    elif kind == "error":
                        err = HubError.model_validate(msg)
                        if err.error_code == "AUTH_FAILED":
                            raise AuthError(err.error or "worker token refused")
                        raise HubUnavailable(f"hub refused registration: {err.error}")
        except TimeoutError as exc:
            raise HubUnavailable("hub did not answer register_worker") from exc

    async def _reader(self) -> None:
        try:
            async for raw in self.ws:
                msg = _decode(raw)
                try:
                    self._handle(msg)
                except PydanticValidationError as exc:
                    log.warning("ignoring malformed %r from hub: %s", msg.get("type"), exc)
                except Exception:  # one bad message must not take the worker down
                    log.exception("failed to handle %r from hub", msg.get("type"))
        except ConnectionClosed:
            pass

    def _handle(self, msg: dict[str, Any]) -> None:
        w = self.worker
        kind = msg.get("type")
        if kind == "job_assigned":
            self._job_given(msg.get("claim_remaining"))
            self.poll_delay = POLL_MIN
            if w.draining:
                # Claimed just before the stop: run it within the grace like the rest.
                log.info("job %s assigned while draining; running it", msg.get("job_id"))
            w.start_job(JobAssigned.model_validate(msg))
            w.claim_wanted.set()
        elif kind == "no_job_available":
            self._claim_answered()
            if msg.get("reason") == "wait ended":
                # The wait was the poll: wait again at once.
                self.poll_delay = POLL_MIN
                w.claim_wanted.set()
            else:
                self.poll_delay = min(POLL_MAX, self.poll_delay * 2)
        elif kind == "job_available":
            self.poll_delay = POLL_MIN
            if not self._claim_now():
                w.claim_wanted.set()
        elif kind in ACKS:
            acknowledged(w, msg)
        elif kind == "worker_heartbeat_ack":
            w.link.heartbeat_acked()
        elif kind == "cancel_job":
            order = CancelJobOrder.model_validate(msg)
            log.info("hub cancelled job %s: %s", order.job_id, order.reason)
            w.order_cancel(order.job_id)
        elif kind == "drain":
            self._drained(str(msg.get("reason") or "drained by the hub"))
        elif kind == "server_disconnect":
            bye = ServerDisconnect.model_validate(msg)
            log.info("hub going away (%s); back in %s s", bye.reason, bye.reconnect_after)
            w.on_server_disconnect(bye.reconnect_after)
        elif kind == "error":
            err = HubError.model_validate(msg)
            if err.error_code == "NOT_REGISTERED":
                # The hub dropped us (silent past its heartbeat timeout, seen by another
                # hub): a new connection registers afresh, with the jobs we still hold.
                log.warning("hub no longer knows this worker (%s); registering again", err.error)
                closing = start_eagerly(self.ws.close())
                if closing is not None:
                    self._sends.add(closing)
                    closing.add_done_callback(self._sent)
            elif not refused(w, err):
                log.warning("hub error %s: %s", err.error_code, err.error)

    @property
    def outstanding(self) -> int:
        """Slots that unanswered claims may still fill."""
        return sum(self.claims)

    def _job_given(self, remaining: Any) -> None:
        """One `job_assigned` arrived; the claim is answered when no more follow."""
        if not self.claims:
            return
        self.claims[0] -= 1
        # A hub that does not say how many follow answers each claim with one job.
        if not isinstance(remaining, int) or remaining <= 0 or self.claims[0] <= 0:
            self._claim_answered()

    def _claim_answered(self) -> None:
        if self.claims:
            self.claims.popleft()
        if self.rewake and not self.claims:
            self.rewake = False
            self.worker.claim_wanted.set()

    def claim_dropped(self) -> None:
        """A claim in flight will never be answered (the hub could not serve it, its
        storage being down): count it answered, and claim again after the back-off."""
        self._claim_answered()
        self.poll_delay = min(POLL_MAX, self.poll_delay * 2)

    def _claim_now(self) -> bool:
        """Claim every free slot from here, at once, if no claim is in flight.

        A claim sent in the reader's own call skips the claimer task's wake-up and its
        extra turn.
        """
        w = self.worker
        free = w.slots - len(w.jobs)
        if w.draining or self.claims or free <= 0:
            return False
        rest = start_eagerly(self.ws.send(self._claim_message(free)))
        if rest is not None:  # the socket is applying back-pressure: finish later
            self._sends.add(rest)
            rest.add_done_callback(self._sent)
        return True

    def claim_carried(self, free: int) -> ClaimNext:
        """A `claim_next` for `free` slots, sent with an outcome: in flight from now."""
        self.outstanding_since = time.monotonic()
        self.claims.append(free)
        return ClaimNext(max_jobs=free, wait_seconds=self.worker.claim_wait)

    def _claim_message(self, free: int) -> str:
        """A `claim_job` for `free` slots, counted as in flight from now."""
        self.outstanding_since = time.monotonic()
        self.claims.append(free)
        return self.worker.claim_job_message(free).dump()

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sends.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("claim not sent: %s", task.exception())  # the reader sees the close

    async def _claimer(self) -> None:
        w = self.worker
        while True:
            try:
                async with asyncio.timeout(self.poll_delay):
                    await w.claim_wanted.wait()
            except TimeoutError:
                pass  # the fallback poll
            # One turn of the loop first: jobs finishing in the same burst free their
            # slots too, and go into this one claim.
            await asyncio.sleep(0)
            w.claim_wanted.clear()
            if w.draining:
                continue
            now = time.monotonic()
            if self.claims and now - self.outstanding_since > CLAIM_REPLY_TIMEOUT + w.claim_wait:
                self.claims.clear()
            if self.claims:
                # One claim in flight at a time: slots freed (or jobs offered) meanwhile
                # go into one claim once it is answered.
                self.rewake = True
                continue
            free = w.slots - len(w.jobs)
            if free <= 0:
                continue
            await self.ws.send(self._claim_message(free))

    async def _heartbeats(self) -> None:
        w = self.worker
        while True:
            before = {name: e.get("healthy") for name, e in w.connector_status.items()}
            status = await w.check_connectors()
            if any(e["healthy"] and before.get(n) is False for n, e in status.items()):
                await w.refresh_capabilities()
            await w.link.send(
                WorkerHeartbeat(
                    type="worker_heartbeat",
                    worker_id=w.worker_id,
                    status=w.status,
                    current_jobs=w.held_jobs(),
                    system_info=system_info(),
                    connector_status=status,
                    models_loaded=w.models_loaded(),
                )
            )
            await asyncio.sleep(w.settings.heartbeat_interval)

    def _drained(self, reason: str) -> None:
        """The hub drained this worker: take no more jobs, finish the running ones."""
        w = self.worker
        log.info("hub drained this worker (%s): finishing %d job(s)", reason, len(w.jobs))
        w.draining = True
        sending = start_eagerly(self._send_status())
        if sending is not None:
            self._sends.add(sending)
            sending.add_done_callback(self._sent)

    async def _send_status(self) -> None:
        await self.worker.link.send(self._status_message())

    def _status_message(self) -> WorkerStatusMessage:
        w = self.worker
        return WorkerStatusMessage(
            type="worker_status", worker_id=w.worker_id, status=w.status, available_slots=0
        )


def _decode(raw: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
