"""`eager.start_eagerly`: a send runs in the caller's call, and finishes later if it must."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Generator

import pytest

from empq.eager import start_eagerly


@types.coroutine
def _bare_yield() -> Generator[None, None, None]:
    yield


async def test_a_coroutine_that_never_waits_finishes_in_the_call() -> None:
    done: list[str] = []

    async def send() -> None:
        done.append("sent")

    assert start_eagerly(send()) is None
    assert done == ["sent"]


async def test_one_that_waits_is_finished_by_a_task_with_the_outcome_it_waited_for() -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def send() -> None:
        seen.append("started")
        seen.append(await gate)  # e.g. the transport paused: wait until it drains
        await _bare_yield()  # what asyncio.sleep(0) yields: driven too
        seen.append("finished")

    task = start_eagerly(send())
    assert task is not None
    assert seen == ["started"]  # ran up to its first wait in the call
    gate.set_result("drained")
    await asyncio.wait_for(task, 5)
    assert seen == ["started", "drained", "finished"]


async def test_an_error_before_or_after_the_wait_reaches_the_caller() -> None:
    async def fails_at_once() -> None:
        raise ConnectionError("socket gone")

    with pytest.raises(ConnectionError):
        start_eagerly(fails_at_once())

    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def fails_later() -> None:
        await gate

    task = start_eagerly(fails_later())
    assert task is not None
    gate.set_exception(ConnectionError("closed while waiting"))
    with pytest.raises(ConnectionError, match="closed while waiting"):
        await asyncio.wait_for(task, 5)


async def test_cancelling_the_task_cancels_the_send_inside_it() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned: list[bool] = []

    async def send() -> None:
        try:
            await gate
        finally:
            cleaned.append(True)

    task = start_eagerly(send())
    assert task is not None
    task.cancel()  # before the task has even started
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True]
