"""Run a command's main coroutine on the fastest event loop installed.

uvloop (which `uvicorn[standard]` brings on Linux and macOS) runs the hub's and the
worker's socket and task work in C; on this project's 2-core machine it cuts the
hub's CPU per job by a third. Without it, asyncio's own loop runs the same code.
`EMPQ_EVENT_LOOP=asyncio` forces asyncio's loop (to compare, or to debug).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the kind `run` uses (uvloop when installed and not refused)."""
    if os.environ.get("EMPQ_EVENT_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop when it is installed."""
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(main)
