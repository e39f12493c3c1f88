"""A real HTTP endpoint that records webhook deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.serving import QuietServer


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records POSTs; answers 500 to the first `fail_first` of them."""

    url: str = ""
    fail_first: int = 0
    seen: int = 0
    got: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)

    async def next(self, within: float = 5.0) -> Delivery:
        return await asyncio.wait_for(self.got.get(), within)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def hook(request: Request) -> Response:
        rec.seen += 1
        if rec.seen <= rec.fail_first:
            return Response(status_code=500)
        await rec.got.put(Delivery(request.url.path, dict(request.headers), await request.body()))
        return Response(status_code=204)

    app = Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])])
    server = QuietServer(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    )
    task = await server.launch()
    port = server.servers[0].sockets[0].getsockname()[1]
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    server.should_exit = True
    await task


def json_of(d: Delivery) -> Any:
    import json

    return json.loads(d.body)
