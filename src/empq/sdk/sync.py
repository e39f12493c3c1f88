"""`Client`: the blocking face of `AsyncClient`.

Each call runs the async method on an event loop in a private thread (a "portal"),
so the sync client works anywhere, even where a loop is already running (Jupyter),
and every behaviour lives once, in `AsyncClient`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Generator, Iterable, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from empq.errors import EmpqError
from empq.models import Job, Requirements, WorkerInfo
from empq.sdk.client import DEFAULT_POLL_INTERVAL, AsyncClient
from empq.sdk.results import Explanation, JobPage, Match, SubmittedJob
from empq.status import JobStatus

T = TypeVar("T")


async def _anext(agen: AsyncIterator[T]) -> T:
    return await agen.__anext__()


class _Portal:
    """An event loop in a daemon thread that runs coroutines for synchronous callers."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="empq-client", daemon=True
        )
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coro.close()  # never started: close it so Python does not warn
            raise EmpqError("the client is closed")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C in the caller must not leave the coroutine running behind its back
            future.cancel()
            raise

    def iterate(self, agen: AsyncIterator[T]) -> Generator[T, None, None]:
        try:
            while True:
                try:
                    yield self.call(_anext(agen))
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None and self._loop.is_running():
                self.call(aclose())

    @property
    def closed(self) -> bool:
        return self._loop.is_closed()

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()


class Client:
    """A blocking client of one hub, with the same methods as `AsyncClient`.

    ```python
    with Client("http://127.0.0.1:3001") as client:
        job = client.submit(type="demo", requirements={"service_type": "simulation"})
        print(client.wait(job.id, timeout=60).result)
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
        self._async = AsyncClient(
            hub_url, api_key, timeout=timeout, retries=retries, poll_interval=poll_interval
        )
        self.hub_url = self._async.hub_url
        self._portal = _Portal()

    @property
    def aio(self) -> AsyncClient:
        """The underlying `AsyncClient` (use it only from inside `Client` calls' loop)."""
        return self._async

    def submit(
        self,
        type: str,
        payload: Mapping[str, Any] | None = None,
        priority: int | None = None,
        requirements: Mapping[str, Any] | Requirements | None = None,
        **other_fields: Any,
    ) -> SubmittedJob:
        """See `AsyncClient.submit`."""
        return self._portal.call(
            self._async.submit(type, payload, priority, requirements, **other_fields)
        )

    def submit_many(self, jobs: Iterable[Mapping[str, Any]]) -> list[SubmittedJob]:
        """See `AsyncClient.submit_many`."""
        return self._portal.call(self._async.submit_many(list(jobs)))

    def get(self, job_id: str) -> Job:
        """See `AsyncClient.get`."""
        return self._portal.call(self._async.get(job_id))

    def cancel(self, job_id: str) -> Job:
        """See `AsyncClient.cancel`."""
        return self._portal.call(self._async.cancel(job_id))

    def retry(self, job_id: str) -> Job:
        """See `AsyncClient.retry`."""
        return self._portal.call(self._async.retry(job_id))

    def explain(self, job_id: str) -> Explanation:
        """See `AsyncClient.explain`."""
        return self._portal.call(self._async.explain(job_id))

    def match(self, type: str, **fields: Any) -> Match:
        """See `AsyncClient.match`."""
        return self._portal.call(self._async.match(type, **fields))

    def jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        customer_id: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        """See `AsyncClient.jobs`."""
        return self._portal.call(
            self._async.jobs(
                status=status, customer_id=customer_id, type=type, limit=limit, cursor=cursor
            )
        )

    def fetch(self, url: str) -> bytes:
        """See `AsyncClient.fetch`."""
        return self._portal.call(self._async.fetch(url))

    def workers(self) -> list[WorkerInfo]:
        """See `AsyncClient.workers`."""
        return self._portal.call(self._async.workers())

    def worker(self, worker_id: str) -> WorkerInfo:
        """See `AsyncClient.worker`."""
        return self._portal.call(self._async.worker(worker_id))

    def drain(self, worker_id: str) -> WorkerInfo:
        """See `AsyncClient.drain`."""
        return self._portal.call(self._async.drain(worker_id))

    def services(self) -> list[dict[str, Any]]:
        """See `AsyncClient.services`."""
        return self._portal.call(self._async.services())

    def pause(self, service_type: str) -> dict[str, Any]:
        """See `AsyncClient.pause`."""
        return self._portal.call(self._async.pause(service_type))

    def resume(self, service_type: str) -> dict[str, Any]:
        """See `AsyncClient.resume`."""
        return self._portal.call(self._async.resume(service_type))

    def stats(self) -> dict[str, Any]:
        """See `AsyncClient.stats`."""
        return self._portal.call(self._async.stats())

    def usage(
        self, customer_id: str | None = None, since: str | None = None, until: str | None = None
    ) -> dict[str, Any]:
        """See `AsyncClient.usage`."""
        return self._portal.call(self._async.usage(customer_id, since, until))

    def watch(self, job_id: str, timeout: float | None = None) -> Generator[Job, None, None]:
        """See `AsyncClient.watch`; breaking out of the loop (or `.close()`) ends the
        subscription."""
        return self._portal.iterate(self._async.watch(job_id, timeout))

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """See `AsyncClient.wait`."""
        return self._portal.call(self._async.wait(job_id, timeout))

    def subscribe_stats(
        self, interval: float | None = None
    ) -> Generator[dict[str, Any], None, None]:
        """See `AsyncClient.subscribe_stats`."""
        return self._portal.iterate(self._async.subscribe_stats(interval))

    def close(self) -> None:
        """Close connections and stop the client's thread (a second call does nothing)."""
        if self._portal.closed:
            return
        try:
            self._portal.call(self._async.aclose())
        finally:
            self._portal.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
