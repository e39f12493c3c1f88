"""Running a coroutine's first step in the caller's own call (an eager task).

Dispatch is a chain of messages between processes; a write that waited for a new
task's first turn would wait behind whatever else the loop has queued. A WebSocket
send and a Redis write usually finish without suspending, so they are run in place,
and only the rest, if any, becomes a task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


def start_eagerly(
    coro: Coroutine[Any, Any, None],
    create_task: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]] | None = None,
) -> asyncio.Task[None] | None:
    """Run `coro` now, in this call, up to its first suspension.

    Returns None when it finished without suspending (a WebSocket send whose
    transport takes the bytes at once), or a task that finishes it, made by
    `create_task` (a TaskGroup's, say; the loop's by default). This is what Python
    3.12's eager tasks do; the project also runs on 3.11. Until it first suspends,
    `coro` runs as part of the caller's task: it must not enter `asyncio.timeout()`,
    whose cancellation would go to the caller.
    """
    try:
        awaited = coro.send(None)
    except StopIteration:
        return None
    except BaseException:
        coro.close()
        raise
    task = (create_task or asyncio.get_running_loop().create_task)(_resume(coro, awaited))
    # Cancelled before `_resume` ran, it never reaches `coro`: close it (its `finally`
    # blocks run). A no-op once `coro` has finished.
    task.add_done_callback(lambda _: coro.close())
    return task


async def _resume(coro: Coroutine[Any, Any, None], awaited: Any) -> None:
    """Drive a coroutine that suspended on `awaited` until it returns (as a task would)."""
    while True:
        try:
            if awaited is None:  # a bare yield: `asyncio.sleep(0)`
                await asyncio.sleep(0)
            else:
                # What a task does with a yielded future: clear its "blocking" mark,
                # wait for it, and resume the coroutine, which reads the outcome itself.
                awaited._asyncio_future_blocking = False
                with contextlib.suppress(Exception):
                    await awaited
        except asyncio.CancelledError:
            try:
                awaited = coro.throw(asyncio.CancelledError())
            except StopIteration:
                return
            continue
        try:
            awaited = coro.send(None)
        except StopIteration:
            return
