"""Marks on the hub's dispatch path, for bench/trace.py (not part of empq).

On the hub's `PYTHONPATH` with `EMPQ_TRACE_OUT` set, this wraps the functions below so
that each call appends (`perf_counter_ns`, the thread's CPU ns, label) to a list,
written to `EMPQ_TRACE_OUT` as JSON when the hub exits. `perf_counter_ns` is
CLOCK_MONOTONIC, shared by every process of the machine, so the bench's marks and
these fall on one time line. `label>` is a call's start, `label<` its end.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import json
import os
import sys
import time
from typing import Any

MARKS: list[tuple[int, int, str]] = []


def mark(label: str) -> None:
    MARKS.append((time.perf_counter_ns(), time.thread_time_ns(), label))


def wrap(owner: Any, name: str, label: str) -> None:
    f = getattr(owner, name)
    if inspect.iscoroutinefunction(f):

        @functools.wraps(f)
        async def awrapper(*a: Any, **k: Any) -> Any:
            mark(label + ">")
            return await f(*a, **k)

        setattr(owner, name, awrapper)
        return

    @functools.wraps(f)
    def wrapper(*a: Any, **k: Any) -> Any:
        mark(label + ">")
        try:
            return f(*a, **k)
        finally:
            mark(label + "<")

    setattr(owner, name, wrapper)


def install() -> None:
    from uvicorn.protocols.http import httptools_impl

    from empq import scripts
    from empq.broker import core
    from empq.hub import claims, dispatch
    from empq.hub.routes import fast_submit
    from empq.hub.sockets import ws

    wrap(httptools_impl.HttpToolsProtocol, "data_received", "http bytes in")
    wrap(fast_submit, "_authorised", "fast submit: auth")
    wrap(dispatch.Dispatcher, "pick", "pick")
    wrap(dispatch.Dispatcher, "_tell", "offer written")
    wrap(core.Broker, "_submit_call", "submit call built")
    wrap(core.Broker, "_claim_call", "claim call built")
    wrap(scripts.ScriptChannel, "flush", "script write")
    wrap(ws, "parse_frame", "frame parsed")
    wrap(claims.Claims, "claim", "claim handler")
    wrap(scripts.ScriptChannel, "_replied", "script reply")
    wrap(scripts.ScriptChannel, "settled", "event reader: reply read, settling")
    wrap(core.Broker, "_submitted", "submit result")
    wrap(claims.Claims, "give", "job_assigned written")

    def dump() -> None:
        with open(os.environ["EMPQ_TRACE_OUT"], "w") as f:
            json.dump(MARKS, f)

    atexit.register(dump)


if os.environ.get("EMPQ_TRACE_OUT") and "empq.hub" in getattr(sys, "orig_argv", []):
    install()
