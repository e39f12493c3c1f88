"""Module-level function connectors the tests load by `module:name` (child processes need that)."""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel

import empq
from empq.connectors.base import JobContext
from empq.errors import ConnectorError


class Greeting(BaseModel):
    name: str
    times: int = 1


@empq.connector("greet", payload=Greeting)
def greet(payload: Greeting, progress: Any) -> dict[str, Any]:
    progress(50, "greeting")
    return {"text": " ".join([f"hello {payload.name}"] * payload.times), "pid": os.getpid()}


@empq.connector("greet", run_in="process", name="greet_in_child")
def greet_in_child(payload: Greeting, progress: Any) -> dict[str, Any]:
    progress(25, "in the child")
    return {"text": f"hello {payload.name}", "pid": os.getpid()}


@empq.connector("loop", run_in="process")
def spin_in_child(job: JobContext, progress: Any) -> dict[str, Any]:
    """Reports forever, never yielding to anything: only terminating the child stops it."""
    i = 0
    while True:
        progress(i % 100, f"pid {os.getpid()}")
        i += 1
        time.sleep(0.01)


@empq.connector("refuse", run_in="process")
def refuse_in_child(job: JobContext, progress: Any) -> dict[str, Any]:
    raise ConnectorError("no thanks", error_type="service_rejected", retryable=False)


@empq.connector("block")
def block(job: JobContext, progress: Any) -> dict[str, Any]:
    """Blocks its thread like a GPU call, for `payload.seconds`, reporting as it goes."""
    seconds = float(job.payload.get("seconds", 1.0))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(0.25, seconds))  # the thread blocks; the event loop must not
        progress(100 * (1 - (deadline - time.monotonic()) / seconds), "blocking")
    return {"blocked_for": seconds}
