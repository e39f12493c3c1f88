"""A thread that notices when the worker's event loop is blocked, and says who blocked it.

Heartbeats, the hub socket and cancellation all run on the event loop. A connector
on that loop (marked `shares_worker_loop`, or every one with
`EMPQ_CONNECTOR_LOOP=shared`) whose `async def process` calls blocking code stops
all of them: the hub drops the worker for silence and gives its job to another
worker, which runs it twice. The loop cannot be unblocked from outside, but it can
be caught in the act: this thread pings the loop and, when no answer comes within
`threshold` seconds, logs a warning naming the running jobs and their connectors and
the fix (a connector's own loop, `empq.worker.hosting`, or a plain `def` under
`@empq.connector`, which runs in a thread).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("empq.worker.watchdog")

#: A loop that has not answered for this long is reported as blocked.
BLOCKED_AFTER = 2.0


class LoopWatchdog:
    """Pings `loop` from a thread; warns (once per stall) when it stops answering."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        describe: Callable[[], str],
        *,
        threshold: float = BLOCKED_AFTER,
    ) -> None:
        self._loop = loop
        self._describe = describe
        self.threshold = threshold
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="empq-loop-watchdog", daemon=True)
        #: How many stalls were reported (for tests and metrics).
        self.stalls = 0

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (returns at once; the thread ends within `threshold`)."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            answered = threading.Event()
            since = time.monotonic()
            try:
                self._loop.call_soon_threadsafe(answered.set)
            except RuntimeError:
                return  # the loop is closed
            if not answered.wait(self.threshold) and not self._stop.is_set():
                self.stalls += 1
                try:
                    who = self._describe()
                except Exception:  # noqa: BLE001 - a description is best effort
                    who = "unknown"
                log.warning(
                    "event loop blocked for over %.1f s (running: %s): heartbeats, the hub "
                    "socket and cancellation are stalled. A connector on the worker's loop "
                    "is calling blocking code; drop its shares_worker_loop (or unset "
                    "EMPQ_CONNECTOR_LOOP=shared) so it runs on a loop of its own, make it "
                    "a plain def with @empq.connector, or wrap the call in asyncio.to_thread",
                    self.threshold,
                    who,
                )
                while not answered.wait(self.threshold) and not self._stop.is_set():
                    pass
                log.warning("event loop answered again after %.1f s", time.monotonic() - since)
            self._stop.wait(self.threshold / 2)
