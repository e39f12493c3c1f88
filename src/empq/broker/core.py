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

import os
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from empq.broker.base import Assignment, Clock, SubmitResult, wall_clock_ms
from empq.broker.claiming import _token
from empq.broker.events import EventsMixin
from empq.broker.placement import PlacementMixin
from empq.broker.recovery import RecoveryMixin
from empq.broker.usage import UsageMixin
from empq.codec import idempotency_field, spec_of, submission_fields
from empq.config import BrokerSettings
from empq.errors import InvalidTransition, JobNotFound
from empq.matching import JobSpec, WorkerState
from empq.models import Job, JobSubmission, WorkerCapabilities, utc_from_ms
from empq.protocol import dumps
from empq.redis_client import make_client
from empq.status import JobStatus


def new_job_id() -> str:
    """A fresh job id: 128 random bits in 32 hex digits (`uuid4().hex`'s shape, at a
    fifth of its cost on the submit path)."""
    return os.urandom(16).hex()


class Broker(PlacementMixin, RecoveryMixin, EventsMixin, UsageMixin):
    """Every job operation, atomic, over one Redis."""

    @classmethod
    async def connect(cls, settings: BrokerSettings, *, clock: Clock = wall_clock_ms) -> Broker:
        """A broker with its own client for `settings.redis_url`."""
        if settings.redis_url is None:
            raise ValueError("redis_url is required (start an embedded RedisServer first)")
        client = make_client(
            settings.redis_url, settings.redis_max_connections, settings.redis_socket_timeout
        )
        broker = cls(client, settings, clock=clock)
        try:
            await client.ping()
            await broker.scripts.open()  # so the first job does not wait for it
        except BaseException:
            await broker.close()
            raise
        return broker

    # ------------------------------------------------------------------ submission

    async def submit(self, sub: JobSubmission, job_id: str | None = None) -> SubmitResult:
        """Queue one job (or return the job its idempotency key already names)."""
        return (await self.submit_many([sub], None if job_id is None else [job_id]))[0]

    async def submit_many(
        self, subs: Sequence[JobSubmission], job_ids: Sequence[str] | None = None
    ) -> list[SubmitResult]:
        """Queue jobs atomically: all of them, in this order, or none.

        `job_ids` (from `new_job_id`) lets the caller know the ids before the jobs exist.
        """
        keys, args, sigs = self._submit_call(subs, job_ids)
        rows = await self.scripts.submit(keys=keys, args=args)
        results = await self._submitted(rows, sigs, args[0])
        await self.observer.submitted(results, subs)
        return results

    async def submit_and_claim(
        self,
        sub: JobSubmission,
        job_id: str,
        worker_id: str,
        caps: WorkerCapabilities,
        state: WorkerState,
        *,
        spec: JobSpec | None = None,
    ) -> tuple[SubmitResult, Assignment | None]:
        """Queue one job and, in the same round trip, claim it for `worker_id`.

        For a worker whose `claim_job` is parked on this hub: it asked for a job, and
        this one may be it. The claim (reserve.lua) runs right behind the submission in
        the same script call (`submit_reserve`), with claim.lua's rules: the worker gets
        the job only if it may run it and it is then the best job of every queue the
        worker may take from; otherwise the job just stays queued (and the caller claims
        as usual, which answers with the better job).
        """
        await self._paused_fresh()
        eligible = self._eligible(caps, state)
        if self.settings.customer_max_running:
            eligible = []  # the claim checks the customer's limit; reserve.lua does not
        spec = spec_of(sub) if spec is None else spec
        fields = submission_fields(sub)
        keys, args, sigs = self._submit_call([sub], [job_id], [spec], [fields])
        if sigs[0] not in eligible:
            rows = self.scripts.submit.queue(keys, args)
            self.scripts.flush()
            alone = (await self._submitted(await rows, sigs, args[0]))[0]
            await self.observer.submitted([alone], [sub])
            return alone, None
        k = self.keys
        token = _token(worker_id)
        now = args[0]
        reserve_keys = [
            *self._claim_keys(worker_id),
            keys[8],  # the job
            keys[9],  # its queue
            *(k.sig_queue(sig) for sig in eligible),
        ]
        reserve_args = [
            worker_id,
            now,
            now + int(self.settings.claim_timeout * 1000),
            self._maxlen,
            self._sig_version,
            token,
            job_id,
        ]
        # One script call: submit.lua, then reserve.lua (scripts.COMPOSED).
        reply = self.scripts.submit_reserve.queue(
            [*keys, *reserve_keys], [len(keys), len(args), *args, *reserve_args]
        )
        self.scripts.flush()  # the offered worker's claim is already on its way
        rows, won = await reply
        result = (await self._submitted(rows, sigs, now))[0]
        await self.observer.submitted([result], [sub])
        if not isinstance(won, list):  # taken, not the best, or failed: it stays queued
            return result, None
        # The job's hash as the claim left it, from what this call wrote.
        h = {name: str(value) for name, value in fields.items()}
        h.update(
            status="assigned",
            order=result.member or "",
            sig=sigs[0],
            spec=spec.to_json(),
            seq=won[1].decode(),
            created_at=str(now),
            attempts="0",
            progress="0",
            worker_id=worker_id,
            claim_token=token,
            assigned_at=str(now),
        )
        for name, value in zip(("workflow_priority", "workflow_datetime"), won[2:4], strict=True):
            if value:
                h[name] = value.decode()
        assignment = Assignment(job_id, h, token, self.settings.claim_timeout, won[4].decode())
        await self.observer.assigned(worker_id, [assignment])
        return result, assignment

    def _submit_call(
        self,
        subs: Sequence[JobSubmission],
        job_ids: Sequence[str] | None,
        specs: Sequence[JobSpec] | None = None,
        fields: Sequence[dict[str, str | int]] | None = None,
    ) -> tuple[list[str], list[Any], list[str]]:
        """KEYS and ARGV of submit.lua, and each job's signature.

        `specs` and `fields` (`submission_fields`), when the caller has them already.
        """
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
        # The third: the registry version to set if a new signature is registered.
        args: list[Any] = [self.clock(), self._maxlen, os.urandom(8).hex()]
        sigs: list[str] = []
        fair = self.settings.fair_share == "customer"
        for i, sub in enumerate(subs):
            job_id = new_job_id() if job_ids is None else job_ids[i]
            spec = spec_of(sub) if specs is None else specs[i]
            sig = spec.signature
            sigs.append(sig)
            job_key = k.job(job_id)
            keys += [
                job_key,
                k.sig_queue(sig),
                k.workflow(sub.workflow_id) if sub.workflow_id else job_key,
                k.by_customer(sub.customer_id) if sub.customer_id else job_key,
                k.by_type(sub.type),
            ]
            args.append(
                dumps(
                    {
                        "id": job_id,
                        "fields": submission_fields(sub) if fields is None else fields[i],
                        "sig": sig,
                        "spec": spec.to_json(),
                        "idem": idempotency_field(sub.customer_id, sub.idempotency_key),
                        "wf": sub.workflow_id is not None,
                        "cust": sub.customer_id is not None,
                        "priority": sub.priority,
                        "wp": sub.workflow_priority,
                        "wt": sub.workflow_datetime,
                        "step": sub.step_number or 0,
                        **({"fair": self._turn_cost(sub.customer_id)} if fair else {}),
                    }
                )
            )
        if fair:
            keys.append(k.fair_turns)
        return keys, args, sigs

    def _turn_cost(self, customer_id: str | None) -> int:
        """How far one job moves its customer's fair-share turn (1000 / weight)."""
        return max(1, round(1000 / self.settings.customer_weight(customer_id)))

    async def _submitted(self, rows: Any, sigs: list[str], now: int) -> list[SubmitResult]:
        """The results of submit.lua's reply."""
        out = []
        for (raw_id, created, pos, member), sig in zip(rows, sigs, strict=True):
            job_id = raw_id.decode()
            if created:
                order_key = member.decode()
                self._hint(order_key, sig)
                out.append(
                    SubmitResult(
                        job_id,
                        JobStatus.QUEUED,
                        int(pos),
                        cast(datetime, utc_from_ms(now)),
                        True,
                        order_key,
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

    # ------------------------------------------------------------------ operators

    async def cancel(self, job_id: str, reason: str | None = None) -> Job:
        """Cancel the job wherever it is; the event names the worker that held it."""
        k = self.keys
        for _ in range(8):
            fields = await self._r.hmget(k.job(job_id), ["sig", "worker_id"])
            if fields[0] is None:
                raise JobNotFound(job_id)
            worker = fields[1].decode() if fields[1] else ""
            now = self.clock()
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
                    *self._usage_keys(now),
                ],
                args=[reason or "", now, self._maxlen, job_id, worker, self._usage_ttl],
            )
            if reply[0] == b"RETRY":  # the job changed hands between the read and the script
                continue
            if reply[0] == b"FINAL":
                raise InvalidTransition(job_id, reply[1].decode(), "cancel")
            self._check(job_id, reply)
            job = await self.get(job_id)
            await self.observer.cancelled(job, worker or None)
            return job
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
        job = await self.get(job_id)
        await self.observer.retried(job)
        return job
