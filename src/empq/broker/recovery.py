"""Recovery: jobs of lost workers, unaccepted assignments, timeouts, delayed retries, clean-up."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from empq.broker.base import (
    _worker_of_token,
)
from empq.broker.reports import ReportsMixin
from empq.codec import idempotency_field
from empq.errors import EmpqError, JobNotFound, StaleClaim
from empq.status import JobStatus

#: Reads of a registering worker's job set before giving up (it changes only if the
#: same id claims on another hub meanwhile).
SETTLE_TRIES = 5


class RecoveryMixin(ReportsMixin):
    """Background recovery; every step re-checks the claim, so several hubs may run it."""

    async def release(self, job_id: str, token: str, reason: str) -> None:
        """A hand-back (`release_job`): the job goes back to its place, no attempt counted.

        Raises `StaleClaim` when `token` no longer holds the job, `JobNotFound` for none.
        """
        k = self.keys
        fields = await self._r.hmget(k.job(job_id), ["sig", "status"])
        if fields[0] is None:
            raise JobNotFound(job_id)
        if not await self._requeue(job_id, reason, token, counted=False):
            status = await self._r.hget(k.job(job_id), "status")
            current = status.decode() if status else "unknown"
            raise StaleClaim(job_id, f"claim token does not hold the job (job is {current})")

    async def _requeue(
        self,
        job_id: str,
        reason: str,
        expected_token: str | None = None,
        *,
        counted: bool = True,
    ) -> bool:
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
            args=[
                token,
                reason,
                self.clock(),
                self._maxlen,
                job_id,
                uuid.uuid4().hex,
                "1" if counted else "0",
            ],
        )
        if reply[0] != b"OK":
            return False
        await self.observer.requeued(job_id, token, reason, reply[1].decode(), counted=counted)
        return True

    async def release_unseen(self, worker_id: str, held: Collection[str], reason: str) -> list[str]:
        """Hand back the jobs assigned to `worker_id` that it was never told about.

        A claim whose script ran but whose reply was lost (Redis or the connection failed
        mid-call) leaves jobs `assigned` to a worker that never heard of them; they would
        otherwise wait for the claim timeout and lose an attempt. `held` are the jobs the
        worker was given; only jobs still `assigned` under its token go back, at their
        place and without an attempt (they never reached the worker).
        """
        ids = [m.decode() for m in await self._r.smembers(self.keys.worker_jobs(worker_id))]
        done = []
        for job_id in sorted(set(ids) - set(held)):
            status, token = await self._r.hmget(self.keys.job(job_id), ["status", "claim_token"])
            if status != b"assigned" or token is None:
                continue
            if _worker_of_token(token.decode()) != worker_id:
                continue
            if await self._requeue(job_id, reason, token.decode(), counted=False):
                done.append(job_id)
        return done

    async def requeue_worker_jobs(
        self, worker_id: str, reason: str, *, counted: bool = True
    ) -> list[str]:
        """Return every job a worker holds to its place in the queue.

        The attempt counts (`counted`) unless the worker handed the jobs back (a graceful
        `disconnect`).
        """
        ids = [m.decode() for m in await self._r.smembers(self.keys.worker_jobs(worker_id))]
        done = []
        for job_id in sorted(ids):
            token = await self._r.hget(self.keys.job(job_id), "claim_token")
            if token is not None and _worker_of_token(token.decode()) == worker_id:
                if await self._requeue(job_id, reason, token.decode(), counted=counted):
                    done.append(job_id)
            else:  # the set lagged behind a finished job; tidy it
                await self._r.srem(self.keys.worker_jobs(worker_id), job_id)
        return done

    async def settle_registration(
        self, worker_id: str, current: Sequence[str], reason: str
    ) -> tuple[list[str], list[str]]:
        """Settle every job `worker_id` holds as it registers again (settle.lua, atomic).

        The jobs in `current` (the registration's list) stay held under their claim
        tokens; every other is requeued with its attempt counted. Returns (kept, requeued).
        """
        k = self.keys
        wjobs = k.worker_jobs(worker_id)
        for _ in range(SETTLE_TRIES):
            ids = sorted(m.decode() for m in await self._r.smembers(wjobs))
            if not ids:
                return [], []
            async with self._r.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hget(k.job(job_id), "sig")
                sigs = await pipe.execute()
            keys = [wjobs, k.queued, k.claims, k.running, k.finished, k.counts]
            keys += [k.signatures, k.signatures_version, k.stats, k.events]
            for job_id, sig in zip(ids, sigs, strict=True):
                keys += [k.job(job_id), k.sig_queue(sig.decode() if sig else "-")]
            listed = sorted(set(current))
            reply = await self.scripts.settle(
                keys=keys,
                args=[
                    worker_id,
                    reason,
                    self.clock(),
                    self._maxlen,
                    uuid.uuid4().hex,
                    len(listed),
                    *listed,
                    *ids,
                ],
            )
            if reply and reply[0] == b"RETRY":
                continue  # a job joined the set between the read and the script
            kept, requeued = reply
            return [j.decode() for j in kept], [j.decode() for j in requeued]
        raise EmpqError(f"worker {worker_id}'s jobs kept changing while it registered")

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

    async def next_retry_at(self) -> int | None:
        """When the earliest delayed retry is due (ms since the epoch); None if none waits."""
        first = await self._r.zrange(self.keys.delayed, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

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
        if done:
            await self.observer.promoted(done)
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
                args=[cutoff, job_id, idempotency_field(cust, idem) or ""],
            )
        for sig in await self._r.hkeys(k.signatures):
            s = sig.decode()
            await self.scripts.gc_signature(
                keys=[k.signatures, k.signatures_version, k.sig_queue(s)],
                args=[s, uuid.uuid4().hex],
            )
        return removed
