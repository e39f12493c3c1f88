"""Function connectors: `@empq.connector("service")` turns a plain function into a connector.

```python
import empq

@empq.connector("hello")
def hello(job, progress):
    progress(50, "half way")
    return {"greeting": f"hello {job.payload.get('name', 'world')}"}
```

`EMPQ_CONNECTORS=hello:hello empq worker` runs it. The decorated name is a
`Connector` subclass (the function itself is its `function` attribute), so the
registry loads it like any other `module:Class`.

- An `async def` runs on an event loop of its own (a thread; see `empq.worker.hosting`)
  and gets the usual async `progress`.
- A plain `def` runs in a thread (`run_in="thread"`, the default) or a child process
  (`run_in="process"`), so blocking GPU code never stalls heartbeats or cancellation.
  Its `progress(...)` is a plain call, safe from that thread; once the job is
  cancelled (by the hub, or at shutdown) the next `progress(...)` raises `JobCancelled`
  and `progress.cancelled` is True, so long loops stop at their next report.
- `payload=Model` (or a first parameter annotated with a pydantic model) validates the
  payload before the function runs and passes the model instead of the job; a payload
  that does not fit fails the job at once with `invalid_payload`, not retried.
- The function returns a dict, a pydantic model (dumped to JSON) or None (`{}`), or
  raises `ConnectorError`; any other exception is a `connector_crashed` failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import threading
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ValidationError

from empq.connectors.base import (
    Connector,
    JobContext,
    ProgressReporter,
    invalid_payload,
    payload_errors,
)
from empq.errors import EmpqError

log = logging.getLogger(__name__)

RunIn = Literal["thread", "process"]


class JobCancelled(EmpqError):
    """Raised by a sync function's `progress(...)` once its job was cancelled."""

    code = "JOB_CANCELLED"


class SyncProgress:
    """The `progress` a sync function gets: a plain call that is safe from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, report: ProgressReporter) -> None:
        self._loop = loop
        self._report = report
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled: stop working, the result will be dropped."""
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Mark the job cancelled (called from the event loop)."""
        self._cancelled.set()

    def __call__(
        self,
        progress: float,
        message: str | None = None,
        *,
        current_step: str | int | None = None,
        total_steps: int | None = None,
    ) -> None:
        """Report progress (0..100); raises `JobCancelled` if the job was cancelled."""
        if self._cancelled.is_set() or self._loop.is_closed():
            raise JobCancelled("job cancelled")
        # Not waited for: the report is queued on the loop in call order and the
        # worker throttles what it sends, so the GPU thread never waits on the socket.
        asyncio.run_coroutine_threadsafe(
            _report(self._report, progress, message, current_step, total_steps), self._loop
        )


async def _report(
    report: ProgressReporter,
    progress: float,
    message: str | None,
    current_step: str | int | None,
    total_steps: int | None,
) -> None:
    await report(progress, message, current_step=current_step, total_steps=total_steps)


class ThreadArtifacts:
    """The job's artifact sink, with a blocking `save_sync` for code running in a thread."""

    def __init__(self, inner: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._inner = inner
        self._loop = loop

    async def save(self, name: str, data: bytes, content_type: str) -> str:
        """Store `data` as artifact `name` and return its URL (from the event loop)."""
        url: str = await self._inner.save(name, data, content_type)
        return url

    def save_sync(self, name: str, data: bytes, content_type: str) -> str:
        """Store `data` as artifact `name` and return its URL (from the function's thread)."""
        return asyncio.run_coroutine_threadsafe(
            self.save(name, data, content_type), self._loop
        ).result()


class FunctionConnector(Connector):
    """A connector whose `process` calls one function; made by `empq.connector`."""

    function: ClassVar[Callable[..., Any]]
    payload_model: ClassVar[type[BaseModel] | None] = None
    run_in: ClassVar[RunIn] = "thread"

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        """Validate the payload, run the function where it belongs, return its result."""
        fn = type(self).function
        arg: Any = job
        if self.payload_model is not None:
            try:
                arg = self.payload_model.model_validate(job.payload)
            except ValidationError as exc:
                fields = ", ".join(e["field"] for e in payload_errors(exc))
                raise invalid_payload(job, f"bad fields: {fields}", payload_errors(exc)) from exc
        if inspect.iscoroutinefunction(fn):
            return as_result(await fn(arg, progress))
        if self.run_in == "process":
            from empq.connectors.subprocess_run import run_in_child

            return as_result(await run_in_child(type(self), job, progress))
        return as_result(await self._in_thread(fn, arg, job, progress))

    async def _in_thread(
        self, fn: Callable[..., Any], arg: Any, job: JobContext, progress: ProgressReporter
    ) -> Any:
        loop = asyncio.get_running_loop()
        sync_progress = SyncProgress(loop, progress)
        if arg is job:
            arg = dataclasses.replace(job, artifacts=ThreadArtifacts(job.artifacts, loop))
        future = loop.run_in_executor(None, fn, arg, sync_progress)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            sync_progress.cancel()
            if not future.done():
                # A thread cannot be stopped from outside; it ends at its next progress().
                log.warning(
                    "job %s cancelled; connector %s's function still runs in its thread "
                    "until its next progress() call",
                    job.id,
                    self.name,
                )
            raise


def as_result(value: Any) -> dict[str, Any]:
    """A function's return value as a job result.

    Anything else than a dict, a model or None passes through as it is: the worker
    fails such a job with `invalid_result`, naming the type.
    """
    if value is None:
        return {}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return typing.cast(dict[str, Any], value)


def _annotated_model(fn: Callable[..., Any]) -> type[BaseModel] | None:
    """The pydantic model the function's first parameter is annotated with, if any."""
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError, AttributeError):  # unresolvable annotations: untyped
        return None
    params = list(inspect.signature(fn).parameters)
    hint = hints.get(params[0]) if params else None
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return hint
    return None


def connector(
    service: str,
    *,
    payload: type[BaseModel] | None = None,
    name: str | None = None,
    run_in: RunIn = "thread",
) -> Callable[[Callable[..., Any]], type[FunctionConnector]]:
    """Turn `def f(job, progress)` (or `f(payload, progress)`) into a connector for `service`.

    `payload` is a pydantic model the job's payload must fit (else `invalid_payload`);
    `name` is how `EMPQ_CONNECTORS` may also name it (default: the function's name);
    `run_in` says where a sync function runs: a thread, or a child process (it must
    then be a module-level function of an importable module).
    """
    if not service:
        raise ValueError("connector(service): service must be a non-empty string")
    if run_in not in ("thread", "process"):
        raise ValueError(f"connector(run_in=...): expected 'thread' or 'process', got {run_in!r}")

    def decorate(fn: Callable[..., Any]) -> type[FunctionConnector]:
        model = payload if payload is not None else _annotated_model(fn)
        attrs: dict[str, Any] = {
            "name": name or fn.__name__,
            "services": (service,),
            "function": staticmethod(fn),
            "payload_model": model,
            "run_in": run_in,
            # A plain def runs in a thread or a child already; an async def gets a loop
            # of its own (empq.worker.hosting), where blocking code stalls only itself.
            "shares_worker_loop": not inspect.iscoroutinefunction(fn),
            "__module__": fn.__module__,
            "__qualname__": fn.__qualname__,
            "__doc__": fn.__doc__ or f"The function connector `{fn.__name__}` ({service}).",
        }
        cls = type(fn.__name__, (FunctionConnector,), attrs)
        return typing.cast(type[FunctionConnector], cls)

    return decorate
