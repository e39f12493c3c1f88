"""Claiming: the best job a worker may run, handed out with a compare-and-set."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from empq.broker.base import (
    _CLAIM_ROUNDS,
    _PEEK_DEPTH,
    _VERDICT_CACHE,
    Assignment,
)
from empq.broker.queries import QueryMixin
from empq.codec import decode_hash, job_from_hash
from empq.matching import (
    RunningJob,
    StaticVerdicts,
    WorkerState,
    dynamic_reasons,
)
from empq.models import WorkerCapabilities


class ClaimMixin(QueryMixin):
    """Claim jobs for workers."""

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
