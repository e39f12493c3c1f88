"""Running a function connector's sync function in a child process (`run_in="process"`).

Each job gets a fresh `spawn`ed child, so a crash, a leak or a wedged CUDA context
ends with the job, and a cancelled job's child is terminated at once (a thread could
only be asked to stop). The child imports the function by module and name, so it
must be a module-level function of an importable module. Progress and the outcome
come back over a pipe; artifacts cannot be saved from the child (return the data's
location in the result instead).
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import traceback
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from empq.connectors.base import JobContext, ProgressReporter
from empq.errors import ConnectorError

if TYPE_CHECKING:
    from empq.connectors.functions import FunctionConnector

#: How long a terminated child gets before it is killed.
TERMINATE_GRACE = 5.0


class _ChildProgress:
    """`progress(...)` inside the child: sends the report to the worker over the pipe."""

    cancelled = False

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __call__(
        self,
        progress: float,
        message: str | None = None,
        *,
        current_step: str | int | None = None,
        total_steps: int | None = None,
    ) -> None:
        self._conn.send(("progress", float(progress), message, current_step, total_steps))


def _child_main(module: str, qualname: str, job: dict[str, Any], conn: Connection) -> None:
    """The child: import the connector, run its function once, send back what happened."""
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
        fn = getattr(target, "function", target)
        model = getattr(target, "payload_model", None)
        arg: Any = model.model_validate(job["payload"]) if model is not None else JobContext(**job)
        from empq.connectors.functions import as_result

        conn.send(("result", as_result(fn(arg, _ChildProgress(conn)))))
    except ConnectorError as exc:
        conn.send(("error", exc.message, exc.error_type, exc.retryable, exc.details))
    except BaseException as exc:  # noqa: BLE001 - reported to the worker as a crash
        detail = "".join(traceback.format_exception_only(exc)).strip()
        conn.send(("crash", f"{type(exc).__name__}: {exc}", detail))
    finally:
        conn.close()


def _pump(conn: Connection, loop: asyncio.AbstractEventLoop, progress: ProgressReporter) -> Any:
    """In a thread: forward the child's progress until its outcome arrives or it dies."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return ("died",)
        if msg[0] != "progress":
            return msg
        _, value, message, step, total = msg
        asyncio.run_coroutine_threadsafe(
            progress(value, message, current_step=step, total_steps=total), loop
        )


async def run_in_child(
    cls: type[FunctionConnector], job: JobContext, progress: ProgressReporter
) -> Any:
    """Run `cls.function` for `job` in a new process; its result, or a `ConnectorError`."""
    module = cls.__module__
    if module == "__main__":
        module = "__mp_main__"  # what multiprocessing's spawn calls the parent's script
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    fields = {
        "id": job.id,
        "type": job.type,
        "payload": job.payload,
        "priority": job.priority,
        "customer_id": job.customer_id,
        "workflow_id": job.workflow_id,
        "step_number": job.step_number,
    }
    child = ctx.Process(
        target=_child_main, args=(module, cls.__qualname__, fields, theirs), daemon=True
    )
    child.start()
    theirs.close()
    loop = asyncio.get_running_loop()
    try:
        msg = await asyncio.shield(loop.run_in_executor(None, _pump, ours, loop, progress))
    except asyncio.CancelledError:
        child.terminate()
        await asyncio.to_thread(child.join, TERMINATE_GRACE)
        if child.is_alive():
            child.kill()
        raise
    finally:
        ours.close()
    await asyncio.to_thread(child.join, TERMINATE_GRACE)
    kind = msg[0]
    if kind == "result":
        return msg[1]
    if kind == "error":
        _, message, error_type, retryable, details = msg
        raise ConnectorError(message, error_type=error_type, retryable=retryable, details=details)
    if kind == "crash":
        raise ConnectorError(
            f"connector crashed: {msg[1]}", error_type="connector_crashed", retryable=True
        )
    code = child.exitcode
    raise ConnectorError(
        f"job {job.id}: the connector's process died (exit code {code})",
        error_type="connector_crashed",
        retryable=True,
    )
