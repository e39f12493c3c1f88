"""Run an ASGI app with uvicorn on a free port inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from typing import Any

import uvicorn


class QuietServer(uvicorn.Server):
    """A uvicorn server for tests: leaves the test process's signals alone and says
    when it is up (`launch`), so nobody polls `started`."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.up.set()

    async def launch(self, **serve: Any) -> asyncio.Task[None]:
        """Start serving in a task; return it once the server accepts connections."""
        task = asyncio.create_task(self.serve(**serve))
        up = asyncio.create_task(self.up.wait())
        async with asyncio.timeout(30):
            await asyncio.wait([task, up], return_when=asyncio.FIRST_COMPLETED)
        up.cancel()
        if task.done():
            task.result()  # startup failed: raise why
            raise RuntimeError("uvicorn stopped during startup")
        return task


class RunningServer:
    """A started uvicorn server: `url` (http), `ws_url`, and `stop()`."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.app = app
        self._port = port
        self._server: QuietServer | None = None
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
        self._server = QuietServer(config)
        self._task = await self._server.launch(sockets=[sock])

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
