"""Run the hub on both ports: REST + `/ws` on `hub_port`, WebSocket at `/` on `ws_port`.

`running()` starts both uvicorn servers in the current event loop and yields a
handle with the bound ports (port 0 picks a free one, as the tests do). `serve()`
adds what the command needs: an embedded Redis when `EMPQ_REDIS_URL` is unset,
signal handling, and the two-stage shutdown: signals only set an event; then the
hub stops dispatching and tells every peer `server_disconnect`, waits a short
grace period for in-flight replies, and stops the servers with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI
from redis.exceptions import RedisError

from empq.config import HubSettings
from empq.errors import EmpqError
from empq.hub.routes.app import create_app, create_ws_app, serving_app
from empq.hub.runtime import Hub
from empq.redact import redact
from empq.redis_client import make_client
from empq.redis_server import RedisServer

log = logging.getLogger("empq.hub.server")

#: Seconds between `server_disconnect` and closing the servers.
GRACE_SECONDS = 0.5
#: Seconds uvicorn may wait for open connections before cutting them.
SHUTDOWN_DEADLINE = 2


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner and says when it is up."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:  # (uvicorn returns without it when it could not bind)
            self.up.set()


@dataclass
class RunningHub:
    """A hub serving on its two ports."""

    app: FastAPI
    settings: HubSettings
    http_port: int
    ws_port: int

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.state.hub
        return hub

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.hub_host}:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.settings.hub_host}:{self.ws_port}/"


def _config(app: object, settings: HubSettings, port: int, lifespan: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.hub_host,
        port=port,
        lifespan=lifespan,  # type: ignore[arg-type]
        log_config=None,
        access_log=False,
        # Frames up to twice the limit are read so the hub can answer "too large"
        # with an error instead of the protocol layer closing the socket.
        ws_max_size=settings.max_message_bytes * 2 + 65536,
        # Compression costs more CPU than it saves on loopback and LAN links.
        ws_per_message_deflate=False,
        ws="websockets-sansio",
        ws_ping_interval=20,
        ws_ping_timeout=20,
        timeout_graceful_shutdown=SHUTDOWN_DEADLINE,
    )


def _bound_port(server: uvicorn.Server) -> int:
    for s in server.servers:
        for sock in s.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("server has no listening socket")


async def _start(server: _Server) -> asyncio.Task[None]:
    task = asyncio.create_task(server.serve())
    up = asyncio.create_task(server.up.wait())
    await asyncio.wait({task, up}, return_when=asyncio.FIRST_COMPLETED)
    if not server.up.is_set():
        up.cancel()
        await task  # raises the start-up error
        raise RuntimeError("server stopped during start-up")
    return task


@asynccontextmanager
async def running(settings: HubSettings, app: FastAPI | None = None) -> AsyncIterator[RunningHub]:
    """Both servers up (Redis must be reachable at `settings.redis_url`); stopped on exit."""
    app = app or create_app(settings)
    api = _Server(_config(serving_app(app), settings, settings.hub_port, "on"))
    api_task = await _start(api)
    ws = _Server(_config(create_ws_app(app), settings, settings.ws_port, "off"))
    try:
        ws_task = await _start(ws)
    except BaseException:
        api.should_exit = True
        await api_task
        raise
    handle = RunningHub(app, settings, _bound_port(api), _bound_port(ws))
    if handle.hub.http_url is None:
        handle.hub.http_url = handle.http_url
    try:
        yield handle
    finally:
        handle.hub.begin_shutdown()
        await asyncio.sleep(GRACE_SECONDS if handle.hub.connections.all else 0)
        ws.should_exit = True
        api.should_exit = True
        await asyncio.gather(ws_task, api_task)


#: Seconds `empq hub` waits for Redis to answer at start before giving up.
REDIS_START_TIMEOUT = 5.0


async def reachable(settings: HubSettings) -> None:
    """EmpqError in one line naming EMPQ_REDIS_URL unless Redis answers a PING.

    Without it an unreachable Redis fails the app's start-up deep inside uvicorn, which
    prints three tracebacks and exits 3.
    """
    assert settings.redis_url is not None
    client = make_client(settings.redis_url, max_connections=2)
    try:
        await asyncio.wait_for(client.ping(), REDIS_START_TIMEOUT)
    except (RedisError, OSError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        raise EmpqError(
            f"cannot reach Redis at {redact(settings.redis_url)} (--redis-url / "
            f"EMPQ_REDIS_URL): {redact(reason)}"
        ) from None
    finally:
        await client.aclose()


async def serve(settings: HubSettings, *, ready: asyncio.Event | None = None) -> None:
    """Run the hub until cancelled, SIGINT or SIGTERM."""
    async with contextlib.AsyncExitStack() as stack:
        if settings.redis_url is None:
            embedded = RedisServer(settings.data_dir / "redis", persistent=True)
            await asyncio.to_thread(embedded.start)
            stack.callback(embedded.stop)
            settings = settings.model_copy(update={"redis_url": embedded.url})
            log.info("embedded redis on %s (data in %s)", embedded.url, embedded.data_dir)
        else:
            await reachable(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
                stack.callback(loop.remove_signal_handler, sig)
        handle = await stack.enter_async_context(running(settings))
        log.info(
            "hub %s: REST on %s, WebSocket on %s", handle.hub.hub_id, handle.http_url, handle.ws_url
        )
        if settings.api_keys and not settings.worker_tokens:
            log.warning(
                "EMPQ_API_KEYS is set but EMPQ_WORKER_TOKENS is not: anyone who reaches the "
                "WebSocket port can register as a worker and be handed jobs"
            )
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down")
