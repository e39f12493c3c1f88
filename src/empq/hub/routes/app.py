"""`create_app`: the hub's FastAPI app (REST, `/ws`, dashboard), and the bare WS app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from empq import telemetry
from empq.config import HubSettings
from empq.hub.routes import (
    api_artifacts,
    api_control,
    api_jobs,
    api_match,
    api_resources,
    api_system,
    api_usage,
    http_errors,
)
from empq.hub.routes.fast_submit import FastSubmit
from empq.hub.runtime import Hub
from empq.hub.sockets.ws import serve_socket, server_version

if TYPE_CHECKING:
    from empq.broker import Broker


def create_app(settings: HubSettings, broker: Broker | None = None) -> FastAPI:
    """The hub app. Its lifespan connects the broker (unless one is given) and runs the Hub."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from empq.broker import Broker

        own = broker is None
        b = broker if broker is not None else await Broker.connect(settings)
        hub = Hub(settings, b)
        try:
            await hub.start()
            app.state.hub = hub
            yield
        finally:
            await hub.stop()
            if own:
                await b.close()

    app = FastAPI(
        title="empq hub",
        version=server_version(),
        description="REST API of the empq job queue hub. WebSocket protocol: see docs/protocol.md.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    http_errors.install(app)
    app.include_router(api_jobs.router)
    app.include_router(api_match.router)
    app.include_router(api_artifacts.router)
    app.include_router(api_resources.router)
    app.include_router(api_control.router)
    app.include_router(api_usage.router)
    app.include_router(api_system.router)

    @app.websocket("/ws")
    async def ws_endpoint(websocket: WebSocket) -> None:
        await serve_socket(app.state.hub, websocket)

    api_system.mount_dashboard(app)
    return app


def serving_app(main: FastAPI) -> Any:
    """What the REST port serves: `main` behind the fast path of `POST /api/jobs`.

    Outside FastAPI's middleware stack, so a well-formed submission skips it all.
    """
    return telemetry.asgi(FastSubmit(main, main))


def create_ws_app(main: FastAPI) -> Starlette:
    """A bare app serving the same WebSocket endpoint at `/`, sharing `main`'s hub."""

    async def endpoint(websocket: WebSocket) -> None:
        await serve_socket(main.state.hub, websocket)

    return Starlette(routes=[WebSocketRoute("/", endpoint)])
