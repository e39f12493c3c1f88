"""`AsyncClient`: the hub's REST API and job events, async first (CONTRACT §8).

The sync `empq.Client` is a thin facade over this class; nothing here is written twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Iterable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import pydantic
from websockets.exceptions import ConnectionClosed

from empq.errors import HubUnavailable, ValidationError
from empq.models import Job, JobSubmission, Requirements, WorkerInfo
from empq.protocol import SubscribeStats
from empq.sdk.results import Explanation, JobPage, Match, SubmittedJob, WaitTimeout
from empq.sdk.socket import Backoff, decode, open_socket, recv_until
from empq.sdk.transport import Transport, ws_url_for
from empq.sdk.watching import JobStream, job_is_final
from empq.status import JobStatus

log = logging.getLogger("empq.sdk")

#: Seconds `watch` waits for an event before re-reading the job over REST, so a
#: missed event can delay an update but never hang a watcher.
DEFAULT_POLL_INTERVAL = 10.0


def _path(job_id: str) -> str:
    return f"/api/jobs/{quote(job_id, safe='')}"


def validate_submission(fields: Mapping[str, Any]) -> JobSubmission:
    """A submission checked here, before the hub sees it; `ValidationError` names each field."""
    try:
        return JobSubmission.model_validate(dict(fields))
    except pydantic.ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(job)", "message": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        problems = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ValidationError(f"invalid job: {problems}", errors) from exc


def _submitted(submission: JobSubmission, reply: Mapping[str, Any]) -> SubmittedJob:
    """The `Job` a submit created, from the hub's short reply plus what was sent."""
    if "id" in reply and "type" in reply:  # an idempotent resubmit returns the whole job
        return SubmittedJob.model_validate(dict(reply))
    fields = submission.model_dump()
    fields.update(
        id=reply["job_id"],
        status=reply.get("status", JobStatus.QUEUED),
        position=reply.get("position"),
        eta_seconds=reply.get("eta_seconds"),
        eta_reason=reply.get("eta_reason"),
        created_at=reply.get("created_at"),
        warnings=list(reply.get("warnings") or []),
    )
    return SubmittedJob.model_validate(fields)


class AsyncClient:
    """A client of one hub: submit and manage jobs, read workers and stats, follow events.

    ```python
    async with AsyncClient("http://127.0.0.1:3001") as client:
        job = await client.submit(type="demo", requirements={"service_type": "simulation"})
        done = await client.wait(job.id, timeout=60)
    ```
    """

    def __init__(
        self,
        hub_url: str = "http://127.0.0.1:3001",
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self._transport = Transport(hub_url, api_key, timeout=timeout, retries=retries)
        self.hub_url = self._transport.hub_url
        self.ws_url = ws_url_for(self.hub_url)
        self.api_key = api_key
        self.poll_interval = poll_interval

    # ------------------------------------------------------------------ jobs

    async def submit(
        self,
        type: str,
        payload: Mapping[str, Any] | None = None,
        priority: int | None = None,
        requirements: Mapping[str, Any] | Requirements | None = None,
        **other_fields: Any,
    ) -> SubmittedJob:
        """Submit one job; returns it `queued`, with `position` and any `warnings`.

        `other_fields` are the rest of CONTRACT §2 (`customer_id`, `max_retries`,
        `workflow_id`, `idempotency_key`, ...). Bad input raises `ValidationError`
        before anything is sent.
        """
        fields: dict[str, Any] = {"type": type, **other_fields}
        if payload is not None:
            fields["payload"] = dict(payload)
        if priority is not None:
            fields["priority"] = priority
        if requirements is not None:
            fields["requirements"] = (
                requirements.model_dump(exclude_unset=True)
                if isinstance(requirements, Requirements)
                else dict(requirements)
            )
        submission = validate_submission(fields)
        reply = await self._transport.request(
            "POST",
            "/api/jobs",
            json=submission.model_dump(mode="json", exclude_unset=True),
            # a keyed submit is idempotent on the hub, so losing the reply is safe to retry
            safe=submission.idempotency_key is not None,
        )
        job = _submitted(submission, reply)
        for warning in job.warnings:
            log.warning("job %s: %s", job.id, warning)
        return job

    async def submit_many(self, jobs: Iterable[Mapping[str, Any]]) -> list[SubmittedJob]:
        """Submit several jobs at once, all or nothing; each mapping is one `submit`'s fields."""
        submissions = [validate_submission(job) for job in jobs]
        if not submissions:
            return []
        reply = await self._transport.request(
            "POST",
            "/api/jobs/batch",
            json={"jobs": [s.model_dump(mode="json", exclude_unset=True) for s in submissions]},
        )
        return [_submitted(s, r) for s, r in zip(submissions, reply["jobs"], strict=True)]

    async def get(self, job_id: str) -> Job:
        """The job as the hub has it now; `JobNotFound` if there is none."""
        reply = await self._transport.request("GET", _path(job_id), safe=True, job_id=job_id)
        return Job.model_validate(reply)

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job; its worker is told to stop. `InvalidTransition` if already final."""
        reply = await self._transport.request("POST", f"{_path(job_id)}/cancel", job_id=job_id)
        return Job.model_validate(reply)

    async def retry(self, job_id: str) -> Job:
        """Queue a failed, timed-out or cancelled job again with a fresh retry budget."""
        reply = await self._transport.request("POST", f"{_path(job_id)}/retry", job_id=job_id)
        return Job.model_validate(reply)

    async def explain(self, job_id: str) -> Explanation:
        """Which workers could run the job, which cannot and why, and its place in line."""
        reply = await self._transport.request(
            "GET", f"{_path(job_id)}/explain", safe=True, job_id=job_id
        )
        return Explanation.model_validate(reply)

    async def match(self, type: str, **fields: Any) -> Match:
        """A dry run of `submit(type, **fields)`: the workers that could run it and why the
        others cannot, the position and ETA it would get, its warnings; nothing is stored."""
        submission = validate_submission({"type": type, **fields})
        reply = await self._transport.request(
            "POST",
            "/api/match",
            json=submission.model_dump(mode="json", exclude_unset=True),
            safe=True,
        )
        return Match.model_validate(reply)

    async def jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        customer_id: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of jobs, newest first, filtered; pass `next_cursor` back for the next."""
        if status is not None:
            status = _job_status(status)
        params = {
            "status": status,
            "customer_id": customer_id,
            "type": type,
            "limit": limit,
            "cursor": cursor,
        }
        reply = await self._transport.request(
            "GET", "/api/jobs", params={k: v for k, v in params.items() if v is not None}, safe=True
        )
        return JobPage(
            jobs=[Job.model_validate(j) for j in reply.get("jobs", [])],
            next_cursor=reply.get("next_cursor"),
        )

    async def fetch(self, url: str) -> bytes:
        """The bytes of an artifact URL from a job's `result.output_files`."""
        return await self._transport.get_bytes(url)

    # ------------------------------------------------------------------ workers and stats

    async def workers(self) -> list[WorkerInfo]:
        """Connected and recently seen workers."""
        reply = await self._transport.request("GET", "/api/workers", safe=True)
        return [WorkerInfo.model_validate(w) for w in reply.get("workers", [])]

    async def worker(self, worker_id: str) -> WorkerInfo:
        """One worker; `WorkerNotFound` if the hub does not know it."""
        reply = await self._transport.request(
            "GET", f"/api/workers/{quote(worker_id, safe='')}", safe=True, worker_id=worker_id
        )
        return WorkerInfo.model_validate(reply)

    async def drain(self, worker_id: str) -> WorkerInfo:
        """Drain a worker: it finishes its jobs and takes no more (operator key)."""
        reply = await self._transport.request(
            "POST",
            f"/api/workers/{quote(worker_id, safe='')}/drain",
            safe=True,
            worker_id=worker_id,
        )
        return WorkerInfo.model_validate(reply)

    async def services(self) -> list[dict[str, Any]]:
        """Service types paused or with queued jobs: `{service_type, paused, queued}`."""
        reply = await self._transport.request("GET", "/api/services", safe=True)
        return list(reply.get("services", []))

    async def pause(self, service_type: str, paused: bool = True) -> dict[str, Any]:
        """Pause a service type (claims skip its jobs, which stay queued); operator key."""
        verb = "pause" if paused else "resume"
        reply: dict[str, Any] = await self._transport.request(
            "POST", f"/api/services/{quote(service_type, safe='')}/{verb}", safe=True
        )
        return reply

    async def resume(self, service_type: str) -> dict[str, Any]:
        """Resume a paused service type."""
        return await self.pause(service_type, paused=False)

    async def stats(self) -> dict[str, Any]:
        """Queue depth, workers by status, throughput and timings (`GET /api/stats`)."""
        reply: dict[str, Any] = await self._transport.request("GET", "/api/stats", safe=True)
        return reply

    async def usage(
        self, customer_id: str | None = None, since: str | None = None, until: str | None = None
    ) -> dict[str, Any]:
        """Per-customer usage (`GET /api/usage`); `since`/`until` are ISO 8601 times."""
        params = {"customer_id": customer_id, "from": since, "to": until}
        reply: dict[str, Any] = await self._transport.request(
            "GET", "/api/usage", params={k: v for k, v in params.items() if v}, safe=True
        )
        return reply

    # ------------------------------------------------------------------ events

    async def watch(self, job_id: str, timeout: float | None = None) -> AsyncGenerator[Job, None]:  # noqa: ASYNC109 - a deadline across yields
        """Yield a `Job` snapshot at every change, ending after the one with a final status.

        Follows the hub's WebSocket (`subscribe_job`); after every (re)connect it
        re-reads the job over REST, so nothing that happened meanwhile is missed.
        With `timeout`, raises `WaitTimeout` once that many seconds have passed.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        stream = JobStream(
            job_id,
            ws_url=self.ws_url,
            api_key=self.api_key,
            get=self.get,
            poll_interval=self.poll_interval,
        )
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        job = await stream.next()
                except TimeoutError as exc:
                    last = stream.last or await self.get(job_id)
                    raise WaitTimeout(last, timeout or 0) from exc
                yield job
                if job_is_final(job):
                    return
        finally:
            await stream.aclose()

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:  # noqa: ASYNC109 - the contract's signature
        """The job once it has a final status; `WaitTimeout` (a `TimeoutError`) if too slow."""
        last: Job | None = None
        async for job in self.watch(job_id, timeout):
            last = job
        assert last is not None  # watch yields at least once or raises
        return last

    async def subscribe_stats(
        self, interval: float | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Yield the hub's `stats_broadcast` every `interval` seconds (hub default 5)."""
        backoff = Backoff()
        request = SubscribeStats(type="subscribe_stats", enabled=True, interval_seconds=interval)
        while True:
            try:
                ws = await open_socket(self.ws_url, self.api_key)
            except HubUnavailable as exc:
                await backoff.wait(exc)
                continue
            try:
                await ws.send(request.dump())
                await recv_until(ws, "subscription_confirmed")
                backoff.reset()
                async for raw in ws:
                    message = decode(raw)
                    if message is not None and message.get("type") == "stats_broadcast":
                        yield _stats_of(message)
            except (ConnectionClosed, OSError, TimeoutError) as exc:
                await backoff.wait(exc)
            finally:
                await ws.close()

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Close connections; the client cannot be used afterwards."""
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _job_status(value: JobStatus | str) -> JobStatus:
    try:
        return JobStatus(value)
    except ValueError as exc:
        allowed = ", ".join(s.value for s in JobStatus)
        raise ValidationError(
            f"status must be one of {allowed}", [{"field": "status", "message": "unknown status"}]
        ) from exc


def _stats_of(message: Mapping[str, Any]) -> dict[str, Any]:
    stats = message.get("stats")
    if isinstance(stats, dict):
        return stats
    return {k: v for k, v in message.items() if k not in ("type", "timestamp", "id", "source")}
