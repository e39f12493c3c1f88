"""Fixtures that run a real hub (uvicorn on free ports). Owned by the hub area.

- `hub`: a hub in this test's event loop on free ports, against the session Redis.
- `hub_factory`: `async with hub_factory(heartbeat_timeout=1) as h:` for special
  settings; several at once give several hubs on one Redis.
- `hub_process`: `async with hub_process(**env) as p:` runs `python -m empq.hub` as a
  child process (for restart and crash tests); `p.stop()`, `p.kill()`, `p.start()`.
- `RawPeer`: a raw WebSocket client speaking the JSON protocol, with
  `await peer.expect("job_assigned")` that waits (with a timeout) for a message type.

Every hub handle has `.http_url` (`http://127.0.0.1:PORT`), `.ws_url`
(`ws://127.0.0.1:WSPORT/`), `.settings` and `.redis_url`; in-process ones also
`.hub` (the running `empq.hub.runtime.Hub`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from empq.config import HubSettings
from empq.hub.runtime import Hub
from empq.hub.server import running
from tests.support.child_output import ChildOutput

DEFAULT_TIMEOUT = 5.0


@dataclass
class HubHandle:
    """A running in-process hub."""

    http_url: str
    ws_url: str
    settings: HubSettings
    redis_url: str
    hub: Hub

    @property
    def ws_on_http_url(self) -> str:
        """The same WebSocket endpoint at `/ws` on the REST port."""
        return self.http_url.replace("http://", "ws://") + "/ws"

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An httpx client for this hub's REST API."""
        return httpx.AsyncClient(base_url=self.http_url, timeout=DEFAULT_TIMEOUT, **kwargs)


def hub_settings(redis_url: str, tmp: Path, **overrides: Any) -> HubSettings:
    """Settings for a test hub: free ports, files under `tmp`, overrides applied."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "hub_host": "127.0.0.1",
        "hub_port": 0,
        "ws_port": 0,
        "data_dir": tmp / "data",
        "artifact_dir": tmp / "artifacts",
    }
    values.update(overrides)
    return HubSettings(**values)


@asynccontextmanager
async def start_hub(redis_url: str, tmp: Path, **overrides: Any) -> AsyncIterator[HubHandle]:
    """Run a hub in this event loop until the block ends."""
    settings = hub_settings(redis_url, tmp, **overrides)
    async with running(settings) as rh:
        yield HubHandle(rh.http_url, rh.ws_url, settings, redis_url, rh.hub)


@pytest.fixture
async def hub(redis_url: str, tmp_path: Path) -> AsyncIterator[HubHandle]:
    """A real hub with default settings on free ports."""
    async with start_hub(redis_url, tmp_path / "hub") as h:
        yield h


HubFactory = Callable[..., AbstractAsyncContextManager[HubHandle]]


@pytest.fixture
def hub_factory(redis_url: str, tmp_path: Path) -> HubFactory:
    """`async with hub_factory(**setting_overrides) as h:` — one more hub on the same Redis."""
    counter = iter(range(1_000_000))

    def factory(**overrides: Any) -> AbstractAsyncContextManager[HubHandle]:
        return start_hub(redis_url, tmp_path / f"hub{next(counter)}", **overrides)

    return factory


# --------------------------------------------------------------------------- subprocess hub


@dataclass
class HubProcess:
    """`python -m empq.hub` as a child process, restartable on the same ports and Redis."""

    env: dict[str, str]
    http_port: int
    ws_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/"

    async def start(self, within: float = 15.0) -> None:
        """Start the process, wait for its "listening" log line, and check `/ready`.

        The first start binds port 0 (the OS picks; a port picked free beforehand can be
        taken by another process's outgoing connection before the hub binds it) and
        reads the ports from that line; a restart binds the same ones again.
        """
        self.proc = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "empq.hub"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        output = ChildOutput(self.proc, self.log_path)
        try:
            # Logged by `empq.hub.server.serve` once both ports listen and the hub runs.
            if not await output.wait_for("REST on", within):
                raise RuntimeError(f"hub exited at start:\n{output.text()}")
        except TimeoutError:
            raise RuntimeError(f"hub not ready in {within}s:\n{output.text()}") from None
        ports = re.search(
            r"REST on http://[^\s:]+:(\d+), WebSocket on ws://[^\s:]+:(\d+)/", output.text()
        )
        assert ports, output.text()
        self.http_port, self.ws_port = int(ports.group(1)), int(ports.group(2))
        self.env["EMPQ_HUB_PORT"], self.env["EMPQ_WS_PORT"] = ports.group(1), ports.group(2)
        async with httpx.AsyncClient(timeout=5.0) as client:
            ready = await client.get(f"{self.http_url}/ready")
        assert ready.status_code == 200, ready.text

    async def stop(self, within: float = 10.0) -> int:
        """SIGTERM and wait: the graceful path."""
        return await self._end(signal.SIGTERM, within)

    async def kill(self) -> int:
        """SIGKILL: as a crash would end it."""
        return await self._end(signal.SIGKILL, 10.0)

    async def _end(self, sig: signal.Signals, within: float) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = await asyncio.to_thread(self.proc.wait, within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = await asyncio.to_thread(self.proc.wait)
        self.proc = None
        return code


@pytest.fixture
def hub_process(
    redis_url: str, tmp_path: Path
) -> Callable[..., AbstractAsyncContextManager[HubProcess]]:
    """`async with hub_process(EMPQ_HEARTBEAT_TIMEOUT="1") as p:` — a hub child process."""

    @asynccontextmanager
    async def factory(**env: str) -> AsyncIterator[HubProcess]:
        base = tmp_path / f"proc-{uuid.uuid4().hex[:8]}"
        base.mkdir(parents=True)
        full = dict(os.environ)
        full.update(
            {
                "EMPQ_REDIS_URL": redis_url,
                "EMPQ_HUB_HOST": "127.0.0.1",
                "EMPQ_HUB_PORT": "0",
                "EMPQ_WS_PORT": "0",
                "EMPQ_DATA_DIR": str(base / "data"),
                "EMPQ_ARTIFACT_DIR": str(base / "artifacts"),
            }
        )
        full.update(env)
        p = HubProcess(
            full, int(full["EMPQ_HUB_PORT"]), int(full["EMPQ_WS_PORT"]), base / "hub.log"
        )
        await p.start()
        try:
            yield p
        finally:
            await p.stop()

    return factory


# --------------------------------------------------------------------------- raw peer


@dataclass
class RawPeer:
    """A WebSocket peer speaking the raw protocol.

    `history` holds every message received; `pending` those not yet taken by
    `recv` or `expect`.
    """

    ws: ClientConnection
    history: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    hello: dict[str, Any] = field(default_factory=dict)

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str, **kwargs: Any) -> AsyncIterator[RawPeer]:
        """Connect and take `connection_established`."""
        async with connect(url, max_size=None, **kwargs) as ws:
            peer = cls(ws)
            peer.hello = await peer.expect("connection_established")
            yield peer

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        """Send a message (a dict gets a `timestamp` if it has none)."""
        if isinstance(message, dict):
            message = json.dumps({"timestamp": int(time.time() * 1000), **message})
        await self.ws.send(message)

    async def _next(self, within: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), within)
        msg: dict[str, Any] = json.loads(raw)
        self.history.append(msg)
        return msg

    async def recv(self, within: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The oldest message not yet taken (waiting up to `within` seconds)."""
        if self.pending:
            return self.pending.pop(0)
        return await self._next(within)

    async def expect(
        self,
        mtype: str,
        within: float = DEFAULT_TIMEOUT,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Wait for a message of `mtype` (matching `where`); others stay pending."""

        def fits(m: dict[str, Any]) -> bool:
            return m.get("type") == mtype and (where is None or where(m))

        for i, m in enumerate(self.pending):
            if fits(m):
                return self.pending.pop(i)
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [m.get("type") for m in self.history[-20:]]
                raise TimeoutError(f"no '{mtype}' within {within}s; last seen: {seen}")
            try:
                m = await self._next(left)
            except TimeoutError:
                continue
            if fits(m):
                return m
            self.pending.append(m)

    async def request(self, message: dict[str, Any], reply: str, **kw: Any) -> dict[str, Any]:
        """Send and wait for the reply type."""
        await self.send(message)
        return await self.expect(reply, **kw)

    def taken(self, mtype: str) -> list[dict[str, Any]]:
        """Every message of `mtype` received so far (taken or not)."""
        return [m for m in self.history if m.get("type") == mtype]


@asynccontextmanager
async def raw_worker(
    url: str, worker_id: str, capabilities: dict[str, Any] | None = None, **fields: Any
) -> AsyncIterator[RawPeer]:
    """A raw peer registered as a worker (default capabilities: service `simulation`)."""
    caps = capabilities if capabilities is not None else {"services": ["simulation"]}
    async with RawPeer.connect(url) as peer:
        await peer.request(
            {"type": "register_worker", "worker_id": worker_id, "capabilities": caps, **fields},
            "worker_registered",
        )
        yield peer
