"""The job queue over Redis: every state change of a job, each one atomic.

Each operation is one Lua script (`empq/lua/`) that checks the job's state and claim
token, changes it, and appends the matching event to the event stream in the same
step, so a crash can never leave half a change or a change without its event.

Queues: one sorted set per *signature* (the canonical form of a job's matching
fields, see `matching.JobSpec`), all ordered by the order key of `ordering`. A claim
asks `matching` which signatures the worker may take (cached per worker and per
registry version), reads the best few heads across those queues (peek.lua), and
claims the best with a compare-and-set (claim.lua) that fails harmlessly if another
worker got it first. Cost per claim: O(E log N) in Redis for E eligible signatures
and N queued jobs, whatever the jobs ahead need; Python re-evaluates matching only
when signatures appear or disappear, or when the worker holds jobs that restrict
what it may take next (isolation, customer limits), then O(S) for S signatures.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from empq.codec import decode_hash, job_from_hash, spec_of, submission_fields
from empq.config import BrokerSettings
from empq.errors import InvalidTransition, JobNotFound, StaleClaim
from empq.keys import Keys
from empq.matching import (
    JobSpec,
    RunningJob,
    StaticVerdicts,
    WorkerState,
    dynamic_reasons,
)
from empq.models import Job, JobSubmission, WorkerCapabilities, utc_from_ms
from empq.scripts import Scripts
from empq.status import JobStatus

Clock = Callable[[], int]

#: Priority bands reported by `stats()`: label -> (lowest, highest) priority.
PRIORITY_BANDS = {"0-24": (0, 24), "25-49": (25, 49), "50-74": (50, 74), "75-100": (75, 100)}

_PEEK_DEPTH = 4
_CLAIM_ROUNDS = 64
_VERDICT_CACHE = 4096


def wall_clock_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What a submission answers."""

    job_id: str
    status: JobStatus
    position: int | None
    created_at: datetime
    created: bool


@dataclass(frozen=True, slots=True)
class Assignment:
    """A job handed to a worker, with the token that fences its later messages."""

    job: Job
    claim_token: str
    claim_timeout: float


@dataclass(frozen=True, slots=True)
class FailResult:
    """What a failed attempt led to."""

    job_id: str
    retry_scheduled: bool
    retry_delay: float | None
    attempts: int


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the event stream."""

    id: str
    type: str
    data: dict[str, Any]


def _worker_of_token(token: str) -> str:
    # Tokens are "<random>.<worker id>", so the holder's key is known before any read.
    return token.partition(".")[2]


class Broker:
    """Every job operation, atomic, over one Redis."""

    def __init__(
        self,
        redis: Redis,
        settings: BrokerSettings | None = None,
        *,
        clock: Clock = wall_clock_ms,
    ) -> None:
        self.redis = redis
        # redis-py types every reply as a union of bytes/str/...; with decode_responses off
        # they are bytes, so raw commands go through an untyped alias.
        self._r: Any = redis
        self.settings = settings or BrokerSettings()
        self.keys = Keys(self.settings.key_prefix)
        self.clock = clock
        self.scripts = Scripts.register(redis)
        self._maxlen = str(self.settings.event_stream_max)
        self._specs: dict[str, JobSpec] = {}
        self._sig_version: bytes = b"-"
        self._verdicts: OrderedDict[
            int, tuple[WorkerCapabilities, StaticVerdicts, bytes, list[str]]
        ]
        self._verdicts = OrderedDict()

    @classmethod
    async def connect(cls, settings: BrokerSettings, *, clock: Clock = wall_clock_ms) -> Broker:
        """A broker with its own client for `settings.redis_url`."""
        if settings.redis_url is None:
            raise ValueError("redis_url is required (start an embedded RedisServer first)")
        # A blocking pool: a burst of callers waits for a connection instead of failing.
        pool = BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=settings.redis_max_connections, timeout=30
        )
        client: Redis = Redis.from_pool(pool)
        broker = cls(client, settings, clock=clock)
        await client.ping()
        return broker

    async def close(self) -> None:
        """Close the Redis client."""
        await self.redis.aclose()

    async def ping(self) -> bool:
        """Whether Redis answers."""
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    # ------------------------------------------------------------------ submission

    async def submit(self, sub: JobSubmission) -> SubmitResult:
        """Queue one job (or return the job its idempotency key already names)."""
        return (await self.submit_many([sub]))[0]

    async def submit_many(self, subs: Sequence[JobSubmission]) -> list[SubmitResult]:
        """Queue jobs atomically: all of them, in this order, or none."""
        k = self.keys
        keys = [
            k.seq,
            k.queued,
            k.signatures,
            k.signatures_version,
            k.counts,
            k.idempotency,
            k.all_jobs,
            k.events,
        ]
        args: list[Any] = [self.clock(), self._maxlen, uuid.uuid4().hex]
        for sub in subs:
            job_id = uuid.uuid4().hex
            spec = spec_of(sub)
            sig = spec.signature
            job_key = k.job(job_id)
            keys += [
                job_key,
                k.sig_queue(sig),
                k.workflow(sub.workflow_id) if sub.workflow_id else job_key,
                k.by_customer(sub.customer_id) if sub.customer_id else job_key,
                k.by_type(sub.type),
            ]
            args.append(
                json.dumps(
                    {
                        "id": job_id,
                        "fields": submission_fields(sub),
                        "sig": sig,
                        "spec": spec.to_json(),
                        "idem": sub.idempotency_key,
                        "wf": sub.workflow_id is not None,
                        "cust": sub.customer_id is not None,
                        "priority": sub.priority,
                        "wp": sub.workflow_priority,
                        "wt": sub.workflow_datetime,
                        "step": sub.step_number or 0,
                    },
                    separators=(",", ":"),
                )
            )
        now = args[0]
        rows = await self.scripts.submit(keys=keys, args=args)
        out = []
        for raw_id, created, pos in rows:
            job_id = raw_id.decode()
            if created:
                out.append(
                    SubmitResult(
                        job_id, JobStatus.QUEUED, int(pos), cast(datetime, utc_from_ms(now)), True
                    )
                )
            else:
                job = await self.get(job_id)
                out.append(
                    SubmitResult(
                        job_id, job.status, job.position, cast(datetime, job.created_at), False
                    )
                )
        return out

    # ------------------------------------------------------------------ reading

    async def get(self, job_id: str) -> Job:
        """The job, with its queue position when queued."""
        raw = await self._r.hgetall(self.keys.job(job_id))
        if not raw:
            raise JobNotFound(job_id)
        h = decode_hash(raw)
        job = job_from_hash(job_id, h)
        if job.status is JobStatus.QUEUED and "order" in h:
            rank = await self._r.zrank(self.keys.queued, h["order"])
            if rank is not None:
                job.position = rank + 1
        return job

    async def position(self, job_id: str) -> int | None:
        """1-based place of a queued job in the global claim order, else None."""
        order = await self._r.hget(self.keys.job(job_id), "order")
        if order is None:
            return None
        rank = await self._r.zrank(self.keys.queued, order)
        return None if rank is None else rank + 1

    async def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        customer_id: str | None = None,
        job_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """Jobs newest first, filtered; returns the page and the cursor of the next one.

        Reads the most selective index (customer, else type, else all jobs) in pages and
        filters the rest; one call scans at most 20 pages, then hands back a cursor.
        """
        if customer_id is not None:
            index = self.keys.by_customer(customer_id)
        elif job_type is not None:
            index = self.keys.by_type(job_type)
        else:
            index = self.keys.all_jobs
        upper = f"({int(cursor)}" if cursor else "+inf"
        page = max(limit, 50)
        found: list[Job] = []
        last_seq: float | None = None
        for _ in range(20):
            ids = await self._r.zrevrangebyscore(
                index, upper, "-inf", start=0, num=page, withscores=True
            )
            if not ids:
                return found, None
            pipe = self._r.pipeline(transaction=False)
            for raw_id, _score in ids:
                pipe.hgetall(self.keys.job(raw_id.decode()))
            hashes = await pipe.execute()
            for (raw_id, score), raw in zip(ids, hashes, strict=True):
                last_seq = score
                if not raw:
                    continue
                h = decode_hash(raw)
                if status is not None and h.get("status") != status.value:
                    continue
                if job_type is not None and h.get("type") != job_type:
                    continue
                if customer_id is not None and h.get("customer_id") != customer_id:
                    continue
                found.append(job_from_hash(raw_id.decode(), h))
                if len(found) == limit:
                    return found, str(int(score))
            if len(ids) < page:
                return found, None
            upper = f"({int(ids[-1][1])}"
        return found, (str(int(last_seq)) if last_seq is not None else None)

    async def queued_specs(self) -> dict[str, tuple[JobSpec, int]]:
        """Each signature with queued jobs: its spec and how many are queued."""
        await self._refresh_signatures()
        sigs = list(self._specs)
        pipe = self._r.pipeline(transaction=False)
        for sig in sigs:
            pipe.zcard(self.keys.sig_queue(sig))
        counts = await pipe.execute()
        return {s: (self._specs[s], int(n)) for s, n in zip(sigs, counts, strict=True) if n}

    async def stats(self) -> dict[str, Any]:
        """Counts by status and priority band, totals, and average wait and run times."""
        pipe = self._r.pipeline(transaction=False)
        pipe.hgetall(self.keys.counts)
        pipe.hgetall(self.keys.stats)
        for lo, hi in PRIORITY_BANDS.values():
            pipe.zlexcount(self.keys.queued, f"[{100 - hi:03d}", f"({100 - lo + 1:03d}")
        pipe.zcard(self.keys.delayed)
        counts_raw, stats_raw, *bands, delayed = await pipe.execute()
        counts = {s.value: 0 for s in JobStatus}
        counts.update({k.decode(): int(v) for k, v in counts_raw.items()})
        totals = {k.decode(): float(v) for k, v in stats_raw.items()}
        completed = totals.get("completed_total", 0.0)
        return {
            "jobs_by_status": counts,
            "queued_by_priority_band": dict(zip(PRIORITY_BANDS, map(int, bands), strict=True)),
            "queue_depth": counts["queued"],
            "delayed_retries": int(delayed),
            "completed_total": int(completed),
            "failed_total": int(totals.get("failed_total", 0.0)),
            "avg_wait_seconds": totals.get("wait_seconds_sum", 0.0) / completed
            if completed
            else 0.0,
            "avg_run_seconds": totals.get("run_seconds_sum", 0.0) / completed if completed else 0.0,
        }

    # ------------------------------------------------------------------ claiming

    async def _refresh_signatures(self) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.get(self.keys.signatures_version)
        pipe.hgetall(self.keys.signatures)
        version, raw = await pipe.execute()
        self._sig_version = version or b"0"
        self._specs = {k.decode(): JobSpec.from_json(v) for k, v in raw.items()}

    def _static_eligible(self, caps: WorkerCapabilities) -> list[str]:
        entry = self._verdicts.get(id(caps))
        if entry is None or entry[0] is not caps:
            entry = (caps, StaticVerdicts(caps), b"", [])
        caps_, verdicts, version, eligible = entry
        if version != self._sig_version:
            eligible = [s for s, spec in self._specs.items() if not verdicts.reasons(spec)]
            entry = (caps_, verdicts, self._sig_version, eligible)
        self._verdicts[id(caps)] = entry
        self._verdicts.move_to_end(id(caps))
        while len(self._verdicts) > _VERDICT_CACHE:
            self._verdicts.popitem(last=False)
        return eligible

    def _eligible(self, caps: WorkerCapabilities, state: WorkerState) -> list[str]:
        eligible = self._static_eligible(caps)
        restricted = (
            state.running or state.draining or caps.customer_access.max_concurrent_customers
        )
        if not restricted:
            return eligible
        return [s for s in eligible if not dynamic_reasons(caps, state, self._specs[s])]

    async def claim(
        self,
        worker_id: str,
        caps: WorkerCapabilities,
        state: WorkerState | None = None,
        max_jobs: int = 1,
        preferred_types: Sequence[str] | None = None,
    ) -> list[Assignment]:
        """Up to `max_jobs` of the best jobs this worker may run, each fenced by a token.

        `preferred_types` is accepted for the protocol's sake but never reorders: a
        preference must not let a lower-priority job jump a higher one.
        """
        del preferred_types
        state = state or WorkerState()
        out: list[Assignment] = []
        for _ in range(max_jobs):
            assignment = await self._claim_one(worker_id, caps, state)
            if assignment is None:
                break
            out.append(assignment)
            job = assignment.job
            state = state.with_job(RunningJob(job.customer_id, job.requirements.customer_isolation))
        return out

    async def _claim_one(
        self, worker_id: str, caps: WorkerCapabilities, state: WorkerState
    ) -> Assignment | None:
        k = self.keys
        for _ in range(_CLAIM_ROUNDS):
            eligible = self._eligible(caps, state)
            reply = await self.scripts.peek(
                keys=[k.signatures_version, *(k.sig_queue(s) for s in eligible)],
                args=[_PEEK_DEPTH],
            )
            if reply[0] != self._sig_version:
                await self._refresh_signatures()
                continue
            if len(reply) == 1:
                return None
            for i in range(1, len(reply), 2):
                member = reply[i].decode()
                sig = eligible[int(reply[i + 1]) - 1]
                job_id = member.partition("|")[2]
                token = f"{secrets.token_hex(12)}.{worker_id}"
                now = self.clock()
                timeout = self.settings.claim_timeout
                raw = await self.scripts.claim(
                    keys=[
                        k.job(job_id),
                        k.sig_queue(sig),
                        k.queued,
                        k.claims,
                        k.running,
                        k.worker_jobs(worker_id),
                        k.counts,
                        k.events,
                    ],
                    args=[
                        member,
                        job_id,
                        worker_id,
                        token,
                        now,
                        now + int(timeout * 1000),
                        self._maxlen,
                    ],
                )
                if raw:
                    return Assignment(job_from_hash(job_id, decode_hash(raw)), token, timeout)
            # Every candidate went to other workers between peek and claim: look again.
        return None

    # ------------------------------------------------------------------ worker reports

    def _check(self, job_id: str, reply: list[Any]) -> None:
        tag = reply[0]
        if tag == b"OK":
            return
        if tag == b"NOTFOUND":
            raise JobNotFound(job_id)
        status = reply[1].decode() if len(reply) > 1 else "unknown"
        raise StaleClaim(job_id, f"claim token does not hold the job (job is {status})")

    async def accept(self, job_id: str, token: str) -> None:
        """The worker took the job (assigned -> accepted)."""
        k = self.keys
        reply = await self.scripts.accept(
            keys=[k.job(job_id), k.claims, k.counts, k.events],
            args=[token, self.clock(), self._maxlen, job_id],
        )
        self._check(job_id, reply)

    async def progress(
        self, job_id: str, token: str, progress: float, message: str | None = None
    ) -> None:
        """Record progress (0..100) from the worker holding the job."""
        k = self.keys
        reply = await self.scripts.progress(
            keys=[k.job(job_id), k.claims, k.counts, k.events],
            args=[token, progress, message or "", self.clock(), self._maxlen, job_id],
        )
        self._check(job_id, reply)

    async def complete(
        self,
        job_id: str,
        token: str,
        result: dict[str, Any],
        processing_time: float | None = None,
    ) -> None:
        """Record success: the job is completed, final."""
        k = self.keys
        reply = await self.scripts.complete(
            keys=[
                k.job(job_id),
                k.claims,
                k.running,
                k.worker_jobs(_worker_of_token(token)),
                k.finished,
                k.counts,
                k.stats,
                k.events,
            ],
            args=[
                token,
                json.dumps(result, separators=(",", ":")),
                "" if processing_time is None else processing_time,
                self.clock(),
                self._maxlen,
                job_id,
            ],
        )
        self._check(job_id, reply)

    async def fail(
        self,
        job_id: str,
        token: str,
        error: str,
        retry: bool = True,
        error_details: dict[str, Any] | None = None,
        *,
        status: JobStatus = JobStatus.FAILED,
    ) -> FailResult:
        """Record a failed attempt: retried after the back-off while retries remain."""
        k = self.keys
        reply = await self.scripts.fail(
            keys=[
                k.job(job_id),
                k.claims,
                k.running,
                k.worker_jobs(_worker_of_token(token)),
                k.delayed,
                k.finished,
                k.counts,
                k.stats,
                k.events,
            ],
            args=[
                token,
                error,
                "" if error_details is None else json.dumps(error_details),
                1 if retry else 0,
                self.clock(),
                self._maxlen,
                job_id,
                status.value,
                *self.settings.retry_delays,
            ],
        )
        self._check(job_id, reply)
        scheduled = reply[1] == 1
        return FailResult(job_id, scheduled, float(reply[2]) if scheduled else None, int(reply[3]))

    # ------------------------------------------------------------------ operators

    async def cancel(self, job_id: str, reason: str | None = None) -> Job:
        """Cancel the job wherever it is; the event names the worker that held it."""
        k = self.keys
        for _ in range(8):
            fields = await self._r.hmget(k.job(job_id), ["sig", "worker_id"])
            if fields[0] is None:
                raise JobNotFound(job_id)
            worker = fields[1].decode() if fields[1] else ""
            reply = await self.scripts.cancel(
                keys=[
                    k.job(job_id),
                    k.sig_queue(fields[0].decode()),
                    k.queued,
                    k.delayed,
                    k.claims,
                    k.running,
                    k.worker_jobs(worker),
                    k.finished,
                    k.counts,
                    k.events,
                ],
                args=[reason or "", self.clock(), self._maxlen, job_id, worker],
            )
            if reply[0] == b"RETRY":  # the job changed hands between the read and the script
                continue
            if reply[0] == b"FINAL":
                raise InvalidTransition(job_id, reply[1].decode(), "cancel")
            self._check(job_id, reply)
            return await self.get(job_id)
        raise InvalidTransition(job_id, "changing", "cancel")

    async def retry(self, job_id: str) -> Job:
        """Queue a failed, timed-out or cancelled job again with a fresh retry budget."""
        k = self.keys
        sig = await self._r.hget(k.job(job_id), "sig")
        if sig is None:
            raise JobNotFound(job_id)
        reply = await self.scripts.retry(
            keys=[
                k.job(job_id),
                k.sig_queue(sig.decode()),
                k.queued,
                k.delayed,
                k.finished,
                k.counts,
                k.signatures,
                k.signatures_version,
                k.events,
            ],
            args=[self.clock(), self._maxlen, job_id, uuid.uuid4().hex],
        )
        if reply[0] == b"FINAL":
            raise InvalidTransition(job_id, reply[1].decode(), "retry")
        self._check(job_id, reply)
        return await self.get(job_id)

    # ------------------------------------------------------------------ recovery

    async def _requeue(self, job_id: str, reason: str, expected_token: str | None = None) -> bool:
        k = self.keys
        fields = await self._r.hmget(k.job(job_id), ["sig", "claim_token", "worker_id"])
        if fields[0] is None or fields[1] is None:
            return False
        token = fields[1].decode()
        if expected_token is not None and token != expected_token:
            return False
        reply = await self.scripts.requeue(
            keys=[
                k.job(job_id),
                k.sig_queue(fields[0].decode()),
                k.queued,
                k.claims,
                k.running,
                k.worker_jobs(_worker_of_token(token)),
                k.finished,
                k.counts,
                k.signatures,
                k.signatures_version,
                k.stats,
                k.events,
            ],
            args=[token, reason, self.clock(), self._maxlen, job_id, uuid.uuid4().hex],
        )
        return bool(reply[0] == b"OK")

    async def requeue_worker_jobs(self, worker_id: str, reason: str) -> list[str]:
        """Return every job a worker holds to its place in the queue (attempt counted)."""
        ids = [m.decode() for m in await self._r.smembers(self.keys.worker_jobs(worker_id))]
        done = []
        for job_id in sorted(ids):
            token = await self._r.hget(self.keys.job(job_id), "claim_token")
            if token is not None and _worker_of_token(token.decode()) == worker_id:
                if await self._requeue(job_id, reason, token.decode()):
                    done.append(job_id)
            else:  # the set lagged behind a finished job; tidy it
                await self._r.srem(self.keys.worker_jobs(worker_id), job_id)
        return done

    async def sweep_claims(self) -> list[str]:
        """Requeue assignments not accepted within the claim timeout."""
        due = await self._r.zrangebyscore(self.keys.claims, "-inf", self.clock(), 0, 500)
        return [
            j.decode()
            for j in due
            if await self._requeue(j.decode(), "assignment was not accepted in time")
        ]

    async def sweep_timeouts(self) -> list[str]:
        """Mark jobs past `requirements.timeout_minutes` (from assignment) as timed out."""
        due = await self._r.zrangebyscore(self.keys.running, "-inf", self.clock(), 0, 500)
        done = []
        for raw in due:
            job_id = raw.decode()
            token = await self._r.hget(self.keys.job(job_id), "claim_token")
            if token is None:
                await self._r.zrem(self.keys.running, job_id)
                continue
            try:
                await self.fail(
                    job_id,
                    token.decode(),
                    "job exceeded its timeout",
                    retry=True,
                    error_details={"error_type": "timeout"},
                    status=JobStatus.TIMEOUT,
                )
            except (StaleClaim, JobNotFound):
                continue
            done.append(job_id)
        return done

    async def promote_due(self) -> list[str]:
        """Queue again the delayed retries whose back-off is over."""
        k = self.keys
        now = self.clock()
        due = await self._r.zrangebyscore(k.delayed, "-inf", now, 0, 500)
        done = []
        for raw in due:
            job_id = raw.decode()
            sig = await self._r.hget(k.job(job_id), "sig")
            if sig is None:
                await self._r.zrem(k.delayed, job_id)
                continue
            ok = await self.scripts.promote(
                keys=[
                    k.job(job_id),
                    k.sig_queue(sig.decode()),
                    k.queued,
                    k.delayed,
                    k.counts,
                    k.signatures,
                    k.signatures_version,
                    k.events,
                ],
                args=[now, self._maxlen, job_id, uuid.uuid4().hex],
            )
            if ok:
                done.append(job_id)
        return done

    async def cleanup(self, retention_seconds: float | None = None) -> int:
        """Forget final jobs older than the retention, and signatures with empty queues."""
        k = self.keys
        keep = self.settings.job_retention if retention_seconds is None else retention_seconds
        cutoff = self.clock() - int(keep * 1000)
        old = await self._r.zrangebyscore(k.finished, "-inf", cutoff, 0, 1000)
        removed = 0
        for raw in old:
            job_id = raw.decode()
            f = await self._r.hmget(k.job(job_id), ["customer_id", "type", "idempotency_key"])
            cust, jtype, idem = (v.decode() if v else None for v in f)
            removed += await self.scripts.cleanup(
                keys=[
                    k.job(job_id),
                    k.finished,
                    k.all_jobs,
                    k.by_customer(cust or "-"),
                    k.by_type(jtype or "-"),
                    k.idempotency,
                    k.counts,
                ],
                args=[cutoff, job_id, idem or ""],
            )
        for sig in await self._r.hkeys(k.signatures):
            s = sig.decode()
            await self.scripts.gc_signature(
                keys=[k.signatures, k.signatures_version, k.sig_queue(s)],
                args=[s, uuid.uuid4().hex],
            )
        return removed

    # ------------------------------------------------------------------ events

    async def publish(self, event_type: str, data: dict[str, Any]) -> str:
        """Append a non-job event (worker_*, system_alert) to the event stream."""
        eid = await self._r.xadd(
            self.keys.events,
            {"type": event_type, "data": json.dumps(data, separators=(",", ":"))},
            maxlen=self.settings.event_stream_max,
            approximate=True,
        )
        return cast(bytes, eid).decode()

    @staticmethod
    def _events(entries: list[Any]) -> list[Event]:
        return [
            Event(eid.decode(), fields[b"type"].decode(), json.loads(fields[b"data"]))
            for eid, fields in entries
        ]

    async def read_events(
        self, last_id: str = "$", block_ms: int = 1000, count: int = 500
    ) -> list[Event]:
        """Events after `last_id`, waiting up to `block_ms` for the first one."""
        reply = await self._r.xread({self.keys.events: last_id}, count=count, block=block_ms)
        if not reply:
            return []
        return self._events(reply[0][1])

    async def events_since(self, event_id: str, count: int = 1000) -> list[Event]:
        """Up to `count` events after `event_id`, for a subscriber catching up."""
        entries = await self._r.xrange(self.keys.events, f"({event_id}", "+", count=count)
        return self._events(entries)

    async def last_event_id(self) -> str:
        """The id of the newest event ("0-0" when there is none)."""
        entries = await self._r.xrevrange(self.keys.events, "+", "-", count=1)
        return entries[0][0].decode() if entries else "0-0"
