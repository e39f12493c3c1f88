"""Reading jobs: one job, pages of jobs, and queue statistics."""

from __future__ import annotations

from typing import Any

from empq.broker.base import (
    PRIORITY_BANDS,
    BrokerBase,
)
from empq.codec import decode_hash, job_from_hash
from empq.errors import JobNotFound
from empq.matching import (
    JobSpec,
)
from empq.models import Job
from empq.status import JobStatus


class QueryMixin(BrokerBase):
    """Read-only operations."""

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
        raw_counts = {k.decode(): int(v) for k, v in counts_raw.items()}
        counts = {s.value: raw_counts.get(s.value, 0) for s in JobStatus}
        totals = {k.decode(): float(v) for k, v in stats_raw.items()}
        completed = totals.get("completed_total", 0.0)
        return {
            "jobs_by_status": counts,
            "queued_by_priority_band": dict(zip(PRIORITY_BANDS, map(int, bands), strict=True)),
            "queue_depth": counts["queued"],
            "delayed_retries": int(delayed),
            "completed_total": int(completed),
            "enqueued_total": raw_counts.get("enqueued", 0),
            "failed_total": int(totals.get("failed_total", 0.0)),
            "avg_wait_seconds": totals.get("wait_seconds_sum", 0.0) / completed
            if completed
            else 0.0,
            "avg_run_seconds": totals.get("run_seconds_sum", 0.0) / completed if completed else 0.0,
        }

    async def take_submissions(self, customer_id: str, count: int) -> float:
        """Take `count` submissions from the customer's rate; 0, or seconds to wait."""
        rate = self.settings.submit_rate(customer_id)
        if rate is None:
            return 0.0
        wait_ms = await self.scripts.rate(
            keys=[self.keys.submit_bucket(customer_id)],
            args=[self.clock(), rate, max(1.0, rate * 10), count],
        )
        return int(wait_ms) / 1000

    async def held_by_customer(self, customer_id: str) -> int:
        """How many of the customer's jobs workers hold now (what `max_running` limits)."""
        return int(await self._r.hget(self.keys.counts, f"held|{customer_id}") or 0)

    async def _refresh_signatures(self) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.get(self.keys.signatures_version)
        pipe.hgetall(self.keys.signatures)
        version, raw = await pipe.execute()
        self._sig_version = version or b"0"
        self._specs = {k.decode(): JobSpec.from_json(v) for k, v in raw.items()}
