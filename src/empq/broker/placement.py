"""Reads for placement: where a job is, or would be, in claim order, and what is ahead."""

from __future__ import annotations

from collections.abc import Iterable

from empq.broker.claiming import ClaimMixin
from empq.models import JobSubmission, WorkerCapabilities


class PlacementMixin(ClaimMixin):
    """Positions and the jobs ahead, for ETAs and dry runs (read-only)."""

    async def order_bound(self, sub: JobSubmission) -> str:
        """An upper bound of the queue member `sub` would get if submitted now.

        submit.lua builds members as priority, effective time, step and sequence; a new
        job's sequence is above every queued one, so every member below this bound is
        claimed before it. A step without its own workflow priority or time inherits
        its workflow's, as submit.lua does.
        """
        wp, wt = sub.workflow_priority, sub.workflow_datetime
        if sub.workflow_id is not None and (wp is None or wt is None):
            stored = await self._r.hmget(
                self.keys.workflow(sub.workflow_id), "priority", "datetime"
            )
            if wp is None and stored[0] is not None:
                wp = int(stored[0])
            if wt is None and stored[1] is not None:
                wt = int(stored[1])
        ep = wp if wp is not None else sub.priority
        et = wt if wt is not None else self.clock()
        # ':' sorts after every digit: the bound is above all members with this prefix.
        return f"{100 - ep:03d}{et:013d}{sub.step_number or 0:06d}:"

    async def position_below(self, bound: str) -> int:
        """1-based claim position of a job that sorts just below `bound` among queued jobs."""
        return int(await self._r.zlexcount(self.keys.queued, "-", f"({bound}")) + 1

    async def member_of(self, job_id: str) -> str | None:
        """A queued job's member (order key), None when it has none."""
        raw = await self._r.hget(self.keys.job(job_id), "order")
        return raw.decode() if raw else None

    async def ahead_for(self, workers: Iterable[WorkerCapabilities], bound: str) -> int:
        """How many queued jobs that at least one of these workers may run sort below
        `bound` (the work those workers do before a job at `bound`)."""
        await self._refresh_signatures()
        sigs: dict[str, None] = {}
        for caps in workers:
            sigs.update(dict.fromkeys(self._static_eligible(caps)))
        if not sigs:
            return 0
        pipe = self._r.pipeline(transaction=False)
        for sig in sigs:
            pipe.zlexcount(self.keys.sig_queue(sig), "-", f"({bound}")
        return sum(int(n) for n in await pipe.execute())
