"""Run an ASGI app with uvicorn on a free port inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from typing import Any

import uvicorn


class _QuietServer(uvicorn.Server):
    # The test process owns its signals; uvicorn must not grab SIGINT/SIGTERM.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class RunningServer:
    """A started uvicorn server: `url` (http), `ws_url`, and `stop()`."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.app = app
        self._port = port
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self.port = sock.getsockname()[1]
        self._port = self.port  # a restart comes back on the same port
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", ws="websockets-sansio"
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop serving: open sockets are closed, new connections refused."""
        if self._server is None or self._task is None:
            return
        # Like a process dying: drop every open connection and in-flight request at once.
        self._server.should_exit = True
        self._server.force_exit = True
        state = self._server.server_state
        for conn in list(state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()
        for task in list(state.tasks):
            task.cancel()
        # Shut down directly rather than waiting for uvicorn's 0.1 s exit poll.
        await asyncio.wait_for(self._server.shutdown(), 10)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._server = None
        self._task = None


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[RunningServer]:
    """Serve `app` for the duration of the block."""
    server = RunningServer(app)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
