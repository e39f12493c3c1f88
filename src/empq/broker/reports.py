"""What the worker holding a job reports: accept, progress, complete, fail."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from empq.broker.base import (
    BrokerBase,
    FailResult,
    _worker_of_token,
)
from empq.errors import JobNotFound, StaleClaim
from empq.status import JobStatus


class ReportsMixin(BrokerBase):
    """Fenced worker reports."""

    async def check_claim(self, job_id: str, token: str) -> None:
        """Raise unless `token` holds the job now (e.g. before storing an artifact upload)."""
        raw = await self._r.hmget(self.keys.job(job_id), ["status", "claim_token"])
        if raw[0] is None:
            raise JobNotFound(job_id)
        if raw[1] is None or raw[1].decode() != token:
            raise StaleClaim(
                job_id, f"claim token does not hold the job (job is {raw[0].decode()})"
            )

    async def accept(self, job_id: str, token: str) -> None:
        """The worker took the job (assigned -> accepted)."""
        k = self.keys
        reply = await self.scripts.accept(
            keys=[k.job(job_id), k.claims, k.counts, k.events],
            args=[token, self.clock(), self._maxlen, job_id],
        )
        self._check(job_id, reply)
        await self.observer.accepted(job_id, token)

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
        *,
        gpus: int = 1,
    ) -> None:
        """Record success: the job is completed, final.

        Completions reported in the same turn of the event loop (a worker's burst of
        finished jobs) go to Redis as one call of complete.lua; each still gets its own
        answer, and a stale one changes nothing.
        """
        job = (
            job_id,
            token,
            json.dumps(result, separators=(",", ":")),
            "" if processing_time is None else processing_time,
            gpus,
        )
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._completes.append((job, fut))
        if len(self._completes) == 1:
            loop.call_soon(self._flush_completes)
        self._check(job_id, await fut)
        await self.observer.completed(job_id, token, processing_time)

    def _flush_completes(self) -> None:
        batch, self._completes = self._completes, []
        k = self.keys
        keys = [k.claims, k.running, k.finished, k.counts, k.stats, k.events]
        now = self.clock()
        args: list[Any] = [now, self._maxlen]
        for (job_id, token, result, ptime, _gpus), _ in batch:
            keys += [k.job(job_id), k.worker_jobs(_worker_of_token(token))]
            args += [token, result, ptime, job_id]
        keys += self._usage_keys(now)
        args += [self._usage_ttl, *(gpus for (*_, gpus), _ in batch)]

        def settle(done: asyncio.Future[Any]) -> None:
            error = None if done.cancelled() else done.exception()
            for i, (_, fut) in enumerate(batch):
                if fut.done():
                    continue
                if done.cancelled():
                    fut.cancel()
                elif error is not None:
                    fut.set_exception(error)
                else:
                    fut.set_result(done.result()[i])

        asyncio.ensure_future(self.scripts.complete.queue(keys, args)).add_done_callback(settle)

    async def fail(
        self,
        job_id: str,
        token: str,
        error: str,
        retry: bool = True,
        error_details: dict[str, Any] | None = None,
        *,
        status: JobStatus = JobStatus.FAILED,
        gpus: int = 1,
    ) -> FailResult:
        """Record a failed attempt: retried after the back-off while retries remain."""
        k = self.keys
        now = self.clock()
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
                *self._usage_keys(now),
            ],
            args=[
                token,
                error,
                "" if error_details is None else json.dumps(error_details),
                1 if retry else 0,
                now,
                self._maxlen,
                job_id,
                status.value,
                *self.settings.retry_delays,
                self._usage_ttl,
                gpus,
            ],
        )
        self._check(job_id, reply)
        scheduled = reply[1] == 1
        result = FailResult(
            job_id, scheduled, float(reply[2]) if scheduled else None, int(reply[3])
        )
        await self.observer.failed(job_id, token, result, status, error)
        return result
