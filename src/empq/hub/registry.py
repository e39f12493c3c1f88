"""The worker registry: who is connected, what they can run, what they hold.

Redis holds the shared view (`keys.workers`: worker id -> `WorkerInfo` JSON;
`keys.heartbeats`: worker id -> ms of its last heartbeat), so every hub can list
every worker and any hub's heartbeat monitor can notice a silent one. Each hub
also keeps `LocalWorker`s for the sockets connected to it: the claim path and
dispatch read those from memory, never from Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from empq.keys import Keys
from empq.matching import JobSpec, RunningJob, StaticVerdicts, WorkerState, dynamic_reasons
from empq.models import WorkerCapabilities, WorkerInfo
from empq.status import WorkerStatus

if TYPE_CHECKING:
    from empq.hub.connections import Connection

log = logging.getLogger("empq.hub.registry")

#: How long an unanswered `job_available` keeps a worker from being offered another.
OFFER_HOLD_SECONDS = 2.0


def _now() -> datetime:
    return datetime.now(UTC)


def stream_position(event_id: str | None) -> tuple[int, int]:
    """An event-stream id ("ms-seq") as a pair that orders like the stream."""
    if not event_id:
        return (0, 0)
    ms, _, seq = event_id.partition("-")
    try:
        return (int(ms), int(seq or 0))
    except ValueError:
        return (0, 0)


@dataclass(slots=True, eq=False)
class ParkedClaim:
    """A `claim_job` with `wait_seconds` that found nothing yet (CONTRACT §9)."""

    max_jobs: int
    #: When the wait ends (the loop's clock).
    deadline: float
    #: Answers `no_job_available` at the deadline.
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class LocalWorker:
    """A worker connected to this hub."""

    info: WorkerInfo
    conn: Connection
    verdicts: StaticVerdicts
    held: dict[str, RunningJob] = field(default_factory=dict)
    offered_at: float = 0.0
    #: When it was last given a job (monotonic): equally good workers take turns.
    given_at: float = 0.0
    #: Per held job, where in the event stream the hold began: older events are about
    #: earlier holders and never end it.
    held_since: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Its claim waiting for a job, if any (`claim_job.wait_seconds`).
    parked: ParkedClaim | None = None
    #: Claims for it run one at a time, so two never share out the same free slots.
    claim_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: A claim for it is in flight, and a job it could take was queued meanwhile: the
    #: claim may have looked too early, so it looks again before parking.
    claiming: bool = False
    missed: bool = False
    #: Per held job: when it was given (monotonic) and its signature, for `run_seconds`.
    held_at: dict[str, tuple[float, str | None]] = field(default_factory=dict)
    #: An operator drained it (`POST /api/workers/{id}/drain`): it stays `draining`
    #: whatever status it reports, until it registers again.
    drained: bool = False

    @property
    def worker_id(self) -> str:
        return self.info.worker_id

    @property
    def caps(self) -> WorkerCapabilities:
        return self.info.capabilities

    @property
    def state(self) -> WorkerState:
        """What the matching rules need to know about the jobs it runs now."""
        return WorkerState(
            running=tuple(self.held.values()),
            draining=self.info.status in (WorkerStatus.DRAINING, WorkerStatus.OFFLINE),
        )

    @property
    def free_slots(self) -> int:
        return max(self.caps.performance.concurrent_jobs - len(self.held), 0)

    @property
    def models_loaded(self) -> dict[str, list[str]]:
        """The models it reported warm, per service, most recent first."""
        return self.info.models_loaded

    def run_time(self, job_id: str) -> tuple[str | None, float] | None:
        """The signature of a held job and how long it has held it (None: not held)."""
        at = self.held_at.get(job_id)
        return None if at is None else (at[1], time.monotonic() - at[0])

    def unpark(self) -> ParkedClaim | None:
        """Take its parked claim away (its timer stopped); the caller answers it."""
        parked, self.parked = self.parked, None
        if parked is not None and parked.timer is not None:
            parked.timer.cancel()
        return parked

    def set_capabilities(self, caps: WorkerCapabilities) -> None:
        """Replace the capabilities; cached verdicts no longer hold."""
        self.info.capabilities = caps
        self.verdicts = StaticVerdicts(caps)

    def can_take(self, spec: JobSpec) -> bool:
        """Whether this worker could take a job of `spec` right now."""
        if self.info.status in (WorkerStatus.DRAINING, WorkerStatus.OFFLINE):
            return False
        if self.verdicts.reasons(spec):
            return False
        # With nothing running, no dynamic rule applies (draining is checked above).
        return not self.held or not dynamic_reasons(self.caps, self.state, spec)

    def reported(self, status: WorkerStatus) -> WorkerStatus:
        """The status to record when the worker reports `status`."""
        if self.drained and status != WorkerStatus.OFFLINE:
            return WorkerStatus.DRAINING
        return status

    def sync_info(self) -> WorkerInfo:
        """The shared record, with the jobs this hub knows it holds."""
        self.info.current_jobs = list(self.held)
        if self.info.status not in (WorkerStatus.DRAINING, WorkerStatus.OFFLINE):
            self.info.status = WorkerStatus.BUSY if self.held else WorkerStatus.IDLE
        return self.info


class Registry:
    """Workers: the shared record in Redis and the ones connected here."""

    def __init__(self, redis: Redis, keys: Keys, hub_id: str) -> None:
        self.redis = redis
        self.keys = keys
        self.hub_id = hub_id
        self.local: dict[str, LocalWorker] = {}
        #: Every known worker (any hub), refreshed from Redis and from worker events.
        self.known: dict[str, WorkerInfo] = {}
        #: job id -> the local worker holding it, so an event finds its worker in O(1).
        self.holders: dict[str, LocalWorker] = {}
        self.version = 0
        # Records and heartbeat times waiting for this turn's write (see `save`).
        self._dirty: dict[str, str] = {}
        self._beats: dict[str, int] = {}
        self._written: asyncio.Future[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ held jobs

    def hold(
        self,
        lw: LocalWorker,
        job_id: str,
        job: RunningJob,
        since: str | None = None,
        signature: str | None = None,
    ) -> None:
        """A local worker now holds a job; `since` is the claim's event id, if known.

        Its VRAM reservation goes on the worker's GPU with the least room that fits it.
        """
        previous = self.holders.get(job_id)
        if previous is not None and previous is not lw:
            previous.held.pop(job_id, None)
            previous.held_since.pop(job_id, None)
            previous.held_at.pop(job_id, None)
        lw.held.pop(job_id, None)
        lw.held[job_id] = lw.state.place(lw.caps, job)
        lw.held_since[job_id] = stream_position(since)
        lw.given_at = time.monotonic()
        lw.held_at[job_id] = (lw.given_at, signature)
        self.holders[job_id] = lw

    def release(self, job_id: str) -> LocalWorker | None:
        """The job is no longer held here; returns the worker that held it."""
        lw = self.holders.pop(job_id, None)
        if lw is not None:
            lw.held.pop(job_id, None)
            lw.held_since.pop(job_id, None)
            lw.held_at.pop(job_id, None)
        return lw

    def ended_by(self, job_id: str, event_id: str) -> LocalWorker | None:
        """Release the job if its hold began before this event; returns the holder then."""
        lw = self.holders.get(job_id)
        if lw is None or lw.held_since.get(job_id, (0, 0)) >= stream_position(event_id):
            return None
        return self.release(job_id)

    def _forget_held(self, lw: LocalWorker) -> None:
        lw.unpark()
        for job_id in list(lw.held):
            if self.holders.get(job_id) is lw:
                del self.holders[job_id]

    # ------------------------------------------------------------------ writes

    async def register(
        self,
        conn: Connection,
        worker_id: str,
        caps: WorkerCapabilities,
        status: WorkerStatus,
        models_loaded: dict[str, list[str]] | None = None,
    ) -> LocalWorker:
        """Record a (re)connected worker and make it local to this hub."""
        now = _now()
        previous = self.local.get(worker_id)
        stored = await self.get(worker_id)
        info = WorkerInfo(
            worker_id=worker_id,
            status=status,
            capabilities=caps,
            connected=True,
            hub_id=self.hub_id,
            registered_at=now,
            last_heartbeat=now,
            jobs_completed=stored.jobs_completed if stored else 0,
            jobs_failed=stored.jobs_failed if stored else 0,
            models_loaded=models_loaded or {},
            run_seconds=stored.run_seconds if stored else {},
        )
        lw = LocalWorker(info=info, conn=conn, verdicts=StaticVerdicts(caps))
        if previous is not None:
            previous.unpark()
            lw.held = previous.held
            lw.held_since = previous.held_since
            lw.held_at = previous.held_at
            for job_id in lw.held:
                self.holders[job_id] = lw
            if previous.conn is not conn:
                previous.conn.worker = None
        self.local[worker_id] = lw
        await self.save(lw)
        return lw

    async def save(self, lw: LocalWorker) -> None:
        """Write a local worker's record and heartbeat time.

        Saves made in one loop turn (a thousand workers heartbeating at once) share one
        write: one HSET of every record and one ZADD of every heartbeat time.
        """
        info = lw.sync_info()
        self._remember(info)
        self._dirty[info.worker_id] = info.model_dump_json()
        self._beats[info.worker_id] = int(time.time() * 1000)
        if self._written is None:
            loop = asyncio.get_running_loop()
            self._written = loop.create_future()
            loop.call_soon(self._flush)
        # Shielded: a caller that is cancelled never cancels the others' write.
        await asyncio.shield(self._written)

    def _drop_pending(self, worker_id: str) -> None:
        """A write about to replace this worker's record must not be undone by a save
        still waiting for its turn (its waiters are answered by that write all the same)."""
        self._dirty.pop(worker_id, None)
        self._beats.pop(worker_id, None)

    def _flush(self) -> None:
        records, self._dirty = self._dirty, {}
        beats, self._beats = self._beats, {}
        written, self._written = self._written, None
        assert written is not None
        task = asyncio.get_running_loop().create_task(self._write(records, beats, written))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(
        self, records: dict[str, str], beats: dict[str, int], written: asyncio.Future[None]
    ) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                if records:
                    pipe.hset(self.keys.workers, mapping=records)  # type: ignore[arg-type]
                if beats:
                    pipe.zadd(self.keys.heartbeats, beats)
                await pipe.execute()
        except asyncio.CancelledError:
            written.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - every waiting caller gets it
            written.set_exception(exc)
        else:
            written.set_result(None)

    async def heartbeat(
        self,
        lw: LocalWorker,
        status: WorkerStatus,
        system_info: dict[str, Any] | None,
        connector_status: dict[str, Any] | None,
        models_loaded: dict[str, list[str]] | None = None,
    ) -> None:
        """A worker said it is alive."""
        lw.info.status = lw.reported(status)
        if models_loaded is not None:
            lw.info.models_loaded = models_loaded
        lw.info.last_heartbeat = _now()
        if system_info is not None:
            lw.info.system_info = system_info
        if connector_status is not None:
            lw.info.connector_status = connector_status
        await self.save(lw)

    async def detach(self, lw: LocalWorker) -> None:
        """The socket closed without `disconnect`: keep the record until the heartbeat
        monitor decides the worker is gone (it may reconnect first)."""
        if self.local.get(lw.worker_id) is lw:
            del self.local[lw.worker_id]
            self._forget_held(lw)
            self._drop_pending(lw.worker_id)
            lw.info.connected = False
            info = lw.sync_info()
            self._remember(info)
            await self.redis.hset(self.keys.workers, info.worker_id, info.model_dump_json())

    def drop_local(self, lw: LocalWorker) -> None:
        """Forget a local worker's registration (its record in Redis stays)."""
        if self.local.get(lw.worker_id) is lw:
            del self.local[lw.worker_id]
            self._forget_held(lw)

    async def mark_offline(self, worker_id: str) -> None:
        """The worker is gone: record it offline and stop watching its heartbeat."""
        lw = self.local.pop(worker_id, None)
        if lw is not None:
            self._forget_held(lw)
        self._drop_pending(worker_id)
        info = lw.info if lw is not None else await self.get(worker_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            if info is not None:
                info.status = WorkerStatus.OFFLINE
                info.connected = False
                info.current_jobs = []
                self._remember(info)
                pipe.hset(self.keys.workers, worker_id, info.model_dump_json())
            pipe.zrem(self.keys.heartbeats, worker_id)
            await pipe.execute()

    # ------------------------------------------------------------------ reads

    async def get(self, worker_id: str) -> WorkerInfo | None:
        """One worker's shared record."""
        raw = await self.redis.hget(self.keys.workers, worker_id)
        return WorkerInfo.model_validate_json(raw) if raw else None

    async def all(self) -> list[WorkerInfo]:
        """Every worker's shared record, refreshing the cache."""
        raw = await self.redis.hgetall(self.keys.workers)
        known: dict[str, WorkerInfo] = {}
        for value in raw.values():
            try:
                info = WorkerInfo.model_validate_json(value)
            except ValueError:
                continue
            known[info.worker_id] = info
        for wid, lw in self.local.items():
            known[wid] = lw.sync_info()
        if set(known) != set(self.known) or any(
            known[w].capabilities != self.known[w].capabilities for w in known
        ):
            self.version += 1
        self.known = known
        return sorted(known.values(), key=lambda w: w.worker_id)

    async def silent_since(self, cutoff_ms: int) -> list[str]:
        """Workers whose last heartbeat is older than `cutoff_ms`."""
        raw = await self.redis.zrangebyscore(self.keys.heartbeats, "-inf", cutoff_ms)
        return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]

    async def forget_offline(self, older_than: datetime) -> int:
        """Delete offline workers last seen before `older_than`."""
        removed = 0
        for info in await self.all():
            seen = info.last_heartbeat or info.registered_at
            if info.status == WorkerStatus.OFFLINE and (seen is None or seen < older_than):
                await self.redis.hdel(self.keys.workers, info.worker_id)
                self.known.pop(info.worker_id, None)
                removed += 1
        return removed

    def _remember(self, info: WorkerInfo) -> None:
        old = self.known.get(info.worker_id)
        if old is None or old.capabilities != info.capabilities or old.status != info.status:
            self.version += 1
        self.known[info.worker_id] = info.model_copy()

    def apply_event(self, event_type: str, data: dict[str, Any]) -> None:
        """Keep the cache current from another hub's worker events."""
        wid = data.get("worker_id")
        if not isinstance(wid, str) or wid in self.local:
            return
        if event_type == "worker_disconnected":
            info = self.known.get(wid)
            if info is not None:
                info.status = WorkerStatus.OFFLINE
                info.connected = False
                self.version += 1
        elif "capabilities" in data:
            try:
                info = WorkerInfo.model_validate(
                    {k: data[k] for k in WorkerInfo.model_fields if k in data}
                )
            except ValueError:
                return
            self.known[wid] = info
            self.version += 1

    def connected(self) -> list[WorkerInfo]:
        """Workers the cache believes connected to some hub."""
        return [w for w in self.known.values() if w.connected and w.status != "offline"]


def dumps(info: WorkerInfo) -> dict[str, Any]:
    """A worker record as JSON-ready data for REST and events."""
    data: dict[str, Any] = json.loads(info.model_dump_json())
    return data
