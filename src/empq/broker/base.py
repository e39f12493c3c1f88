"""Shared parts of the broker: results, the clock, and the state every operation reads."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from empq.config import BrokerSettings
from empq.errors import JobNotFound, StaleClaim
from empq.keys import Keys
from empq.lifecycle import NULL_OBSERVER, JobObserver
from empq.matching import (
    JobSpec,
    RunningJob,
    StaticVerdicts,
)
from empq.models import Job, WorkerCapabilities
from empq.scripts import Scripts
from empq.status import JobStatus

Clock = Callable[[], int]

#: Priority bands reported by `stats()`: label -> (lowest, highest) priority.
PRIORITY_BANDS = {"0-24": (0, 24), "25-49": (25, 49), "50-74": (50, 74), "75-100": (75, 100)}

_PEEK_DEPTH = 64
_CONTENDED_PEEK_DEPTH = 32
_CANDIDATE_CACHE = 1024
_CLAIM_ROUNDS = 64
_VERDICT_CACHE = 4096
_HINTS = 256


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
    #: The job's place in claim order (its queue member), when this call queued it.
    member: str | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    """A job handed to a worker, with the token that fences its later messages.

    `fields` is the job's hash as the claim left it (read back by claim.lua; for a job
    claimed in its own submission, rebuilt from what the submission wrote); `job` builds
    the full record from it on demand (the hub's hot path writes `job_assigned` from the
    fields). `event_id` is the claim's entry in the event stream: events before it are
    about earlier holders of the job.
    """

    job_id: str
    fields: dict[str, str]
    claim_token: str
    claim_timeout: float
    event_id: str | None = None

    @property
    def job(self) -> Job:
        from empq.codec import job_from_hash

        return job_from_hash(self.job_id, self.fields)

    @property
    def running(self) -> RunningJob:
        """What holding this job means for the worker's isolation and VRAM rules."""
        from empq.codec import gpu_memory_of, isolation_of

        return RunningJob(
            self.fields.get("customer_id"), isolation_of(self.fields), gpu_memory_of(self.fields)
        )


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


class BrokerBase:
    """Redis client, keys, scripts and caches shared by the broker's operations."""

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
        # Claim candidates per eligible signature set (see claiming.py).
        self._candidates: dict[tuple[str, ...], Any] = {}
        # Completions waiting for this turn's call of complete.lua (see reports.py).
        self._completes: list[tuple[tuple[str, str, str, Any, int], asyncio.Future[Any]]] = []
        # Jobs this process queued lately: order key -> signature (see claiming.py).
        self._hints: dict[str, str] = {}
        # Paused service types as last read, and when (monotonic; see control.py).
        self._paused: frozenset[str] = frozenset()
        self._paused_read = float("-inf")
        #: Told of each change this broker applied (the hub logs and counts them).
        self.observer: JobObserver = NULL_OBSERVER

    def _usage_keys(self, now_ms: int) -> list[str]:
        """The usage hash an outcome at `now_ms` adds to (its hour's)."""
        return [self.keys.usage(now_ms // 3_600_000)]

    @property
    def _usage_ttl(self) -> int:
        return int(self.settings.usage_retention)

    async def close(self) -> None:
        """Close the Redis client and the scripts' connection."""
        await self.scripts.close()
        await self.redis.aclose()

    async def ping(self) -> bool:
        """Whether Redis answers within a second (the client's own retries included)."""
        try:
            async with asyncio.timeout(1.0):
                return bool(await self.redis.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    def _check(self, job_id: str, reply: list[Any]) -> None:
        tag = reply[0]
        if tag == b"OK":
            return
        if tag == b"NOTFOUND":
            raise JobNotFound(job_id)
        status = reply[1].decode() if len(reply) > 1 else "unknown"
        raise StaleClaim(job_id, f"claim token does not hold the job (job is {status})")
