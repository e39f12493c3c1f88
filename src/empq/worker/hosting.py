"""Connectors on an event loop of their own, so heartbeats never wait for a connector's code.

The worker's event loop carries the hub socket, heartbeats, claims and cancel orders.
A connector's `async def process` that calls blocking code (torch, diffusers,
`time.sleep`) would stop all of them if it ran there: the hub drops the worker for
silence and gives its job to another worker, which runs it twice. So each connector
that does not declare `shares_worker_loop` runs on its own loop, in its own thread,
behind a `HostedConnector` the worker talks to as to any connector:

- `start`, `process`, `cancel`, `health`, `capabilities` and `close` run on the
  connector's loop; the worker awaits them from its own. Cancelling the awaiting
  task cancels the connector's task (at its next `await`: blocking code cannot be
  interrupted, but the worker goes on heartbeating and hands the job back meanwhile).
- What the connector calls back (`progress(...)`, `job.artifacts.save(...)`) runs on
  the worker's loop; progress is queued in call order and never waited for. Each
  report also yields the connector's loop once, so code that blocks between reports
  still gets its `cancel` call and its cancellation at the next report.
- A health check that cannot run because the connector's loop is busy with a job
  says so (healthy: the service is in use) instead of withdrawing the service.

The built-in connectors are plain async code that never blocks and share the worker's
loop (no thread hop per call); so do function connectors of a plain `def`, which run
in a thread already. `EMPQ_CONNECTOR_LOOP=shared` puts every connector on the
worker's loop (the watchdog then warns when one blocks it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from empq.connectors.base import (
    ArtifactSink,
    CapabilityAdditions,
    Connector,
    ConnectorHealth,
    JobContext,
    ProgressReporter,
)
from empq.runner import new_loop

log = logging.getLogger("empq.worker")

T = TypeVar("T")

#: How long a connector's `close` may take at shutdown before its loop is abandoned.
CLOSE_TIMEOUT = 10.0
#: A health check waits this long for a connector loop busy with a job, then says so.
BUSY_HEALTH_WAIT = 4.0


class ConnectorLoop:
    """An event loop running in a daemon thread, for one connector."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread and its loop (which runs until `stop`)."""
        self._loop = new_loop()
        self._thread = threading.Thread(
            target=self._run, args=(self._loop,), name=f"empq-connector-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the loop, cancelling what still runs on it; a blocked one is left to die
        with the process (the thread is a daemon)."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on this loop and wait for it from the caller's loop.

        Cancelling the caller cancels `coro`'s task (at its next `await`). One thread
        crossing each way (asyncio's `run_coroutine_threadsafe` + `wrap_future` cost
        twice the CPU per call, which a busy worker pays per job).
        """
        host = self._loop
        if host is None:
            coro.close()
            raise RuntimeError(f"connector {self.name}: its loop is not started")
        caller = asyncio.get_running_loop()
        done: asyncio.Future[T] = caller.create_future()
        started: list[asyncio.Task[T]] = []

        def settle(task: asyncio.Task[T]) -> None:  # on the caller's loop
            if done.cancelled():
                return
            if task.cancelled():
                done.cancel()
            elif (exc := task.exception()) is not None:
                done.set_exception(exc)
            else:
                done.set_result(task.result())

        def finished(task: asyncio.Task[T]) -> None:  # on this loop
            with contextlib.suppress(RuntimeError):  # the caller's loop is closed
                caller.call_soon_threadsafe(settle, task)

        def start() -> None:  # on this loop
            task = host.create_task(coro)
            started.append(task)
            task.add_done_callback(finished)

        host.call_soon_threadsafe(start)
        try:
            return await done
        except asyncio.CancelledError:
            # Runs after `start` (the loop keeps their order), so the task is there.
            with contextlib.suppress(RuntimeError):  # this loop is closed
                host.call_soon_threadsafe(_cancel_all, started)
            raise

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()


class LoopProgress:
    """A `ProgressReporter` for a connector on its own loop: forwards to the worker's."""

    def __init__(self, report: ProgressReporter, worker_loop: asyncio.AbstractEventLoop) -> None:
        self._report = report
        self._loop = worker_loop

    async def __call__(
        self,
        progress: float,
        message: str | None = None,
        *,
        current_step: str | int | None = None,
        total_steps: int | None = None,
    ) -> None:
        """Queue the report on the worker's loop (in call order), then give the
        connector's own loop a turn: a `cancel` waiting there runs now, and the job's
        cancellation lands here, even in code that blocks between reports."""
        if not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(
                self._report(progress, message, current_step=current_step, total_steps=total_steps),
                self._loop,
            )
        await asyncio.sleep(0)


class LoopArtifacts:
    """A job's artifact sink used from a connector's loop: uploads on the worker's loop
    (where the hub's HTTP client lives)."""

    def __init__(self, inner: ArtifactSink, worker_loop: asyncio.AbstractEventLoop) -> None:
        self.inner = inner
        self._loop = worker_loop

    async def save(self, name: str, data: bytes, content_type: str) -> str:
        """Store `data` as artifact `name` of the job and return its URL."""
        if asyncio.get_running_loop() is self._loop:
            return await self.inner.save(name, data, content_type)
        future = asyncio.run_coroutine_threadsafe(
            self.inner.save(name, data, content_type), self._loop
        )
        return await asyncio.wrap_future(future)


class HostedConnector(Connector):
    """`inner` on its own `ConnectorLoop`; made by `host_connectors`."""

    shares_worker_loop = True  # the proxy itself only forwards

    def __init__(self, inner: Connector) -> None:
        super().__init__(inner.settings)
        self.inner = inner
        self.host = ConnectorLoop(inner.name)
        #: `process` calls under way (a busy loop is then expected, see `health`).
        self.running = 0
        self.busy_health_wait = BUSY_HEALTH_WAIT

    # Warm models live in the inner connector, which notes them from its own loop.
    def note_models(self, service: str, names: Iterable[str]) -> None:
        self.inner.note_models(service, names)

    def forget_models(self, service: str, names: Iterable[str] | None = None) -> None:
        self.inner.forget_models(service, names)

    def models_loaded(self) -> dict[str, list[str]]:
        return self.inner.models_loaded()

    async def start(self) -> None:
        self.host.start()
        await self.host.call(self.inner.start())

    async def close(self) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.host.call(self.inner.close())
        except TimeoutError:
            log.warning("connector %s did not close within %.0f s", self.name, CLOSE_TIMEOUT)
        finally:
            await asyncio.to_thread(self.host.stop)

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        worker_loop = asyncio.get_running_loop()
        # In place, not a copy: the worker reads the same context's `service_started`.
        if not isinstance(job.artifacts, LoopArtifacts):
            job.artifacts = LoopArtifacts(job.artifacts, worker_loop)
        self.running += 1
        try:
            return await self.host.call(
                self.inner.process(job, LoopProgress(progress, worker_loop))
            )
        finally:
            self.running -= 1

    async def cancel(self, job: JobContext) -> None:
        await self.host.call(self.inner.cancel(job))

    async def health(self) -> ConnectorHealth:
        if type(self.inner).health is Connector.health:
            return await Connector.health(self.inner)  # the default needs no loop
        check = asyncio.ensure_future(self.host.call(self.inner.health()))
        if self.running == 0:
            return await check
        done, _ = await asyncio.wait({check}, timeout=self.busy_health_wait)
        if done:
            return check.result()
        check.cancel()
        return ConnectorHealth(
            healthy=True,
            detail="not checked: its event loop is busy running a job",
        )

    async def capabilities(self) -> CapabilityAdditions:
        if type(self.inner).capabilities is Connector.capabilities:
            return await Connector.capabilities(self.inner)  # its services: no loop needed
        return await self.host.call(self.inner.capabilities())


def host_connectors(connectors: list[Connector], mode: str) -> list[Connector]:
    """Each connector that needs it (see the module doc) behind a `HostedConnector`."""
    if mode == "shared":
        return connectors
    return [c if c.shares_worker_loop else hosted(c) for c in connectors]


def hosted(inner: Connector) -> HostedConnector:
    """`inner` behind a proxy carrying its `name` and `services`."""
    proxy: type[HostedConnector] = type(
        f"Hosted{type(inner).__name__}",
        (HostedConnector,),
        {"name": inner.name, "services": inner.services, "__module__": __name__},
    )
    return proxy(inner)
