"""`websocket`: a generic WebSocket service that streams progress and then a result.

Payload: `url` (ws/wss; a path under `EMPQ_WEBSOCKET_BASE_URL` when that is set),
`message` (any JSON, sent once after connecting), `headers`. The service answers
with JSON text frames, read until one ends the job:

- `{"type": "progress", "progress": 0..100, "message"?}` — reported;
- `{"type": "result" | "complete" | "completed", "result"?: {...}}` — the job's
  result is `result` (or the whole frame) plus `output_files: []`;
- `{"type": "error", "error" | "message": "...", "retryable"?: bool}` — fails.

Any other frame, and binary frames, are ignored. A socket that closes before a
result is a retryable `service_unavailable`. Cancel sends `{"type": "cancel"}`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from empq.config import WorkerSettings
from empq.connectors.base import (
    Connector,
    JobContext,
    ProgressReporter,
    invalid_payload,
    payload_errors,
)
from empq.errors import ConnectorError

log = logging.getLogger(__name__)
RESULT_TYPES = frozenset({"result", "complete", "completed"})


class WebSocketSettings(BaseSettings):
    """`EMPQ_WEBSOCKET_BASE_URL`: when set, job URLs must live under it."""

    model_config = SettingsConfigDict(env_prefix="EMPQ_WEBSOCKET_", extra="ignore")

    base_url: str | None = None


class WebSocketPayload(BaseModel):
    """What a `websocket` job says."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1)
    message: Any = None
    headers: dict[str, str] = Field(default_factory=dict)


class WebSocketConnector(Connector):
    """Runs a job over one WebSocket conversation (see the module docstring)."""

    shares_worker_loop = True  # async throughout, never blocks
    name = "websocket"
    services = ("websocket",)

    def __init__(self, settings: WorkerSettings | None = None) -> None:
        super().__init__(settings)
        self.base_url = WebSocketSettings().base_url
        self._sockets: dict[str, ClientConnection] = {}

    def _resolve(self, job: JobContext, url: str) -> str:
        if self.base_url is None:
            if urlsplit(url).scheme not in ("ws", "wss"):
                raise invalid_payload(job, f"url {url!r} must be an absolute ws(s) URL")
            return url
        full = urljoin(self.base_url.rstrip("/") + "/", url.lstrip("/"))
        if urlsplit(full).netloc != urlsplit(self.base_url).netloc:
            raise invalid_payload(job, f"url {url!r} is outside EMPQ_WEBSOCKET_BASE_URL")
        return full

    async def cancel(self, job: JobContext) -> None:
        """Ask the service to stop, then close the socket."""
        ws = self._sockets.get(job.id)
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"type": "cancel"}))
        await ws.close()

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        """Connect, send `message`, and read frames until a result or an error."""
        try:
            spec = WebSocketPayload.model_validate(job.payload)
        except ValidationError as exc:
            raise invalid_payload(job, "bad websocket request", payload_errors(exc)) from exc
        url = self._resolve(job, spec.url)
        try:
            ws = await connect(url, additional_headers=spec.headers, max_size=64 * 2**20)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ConnectorError(
                f"WebSocket service unreachable at {url}: {exc}",
                error_type="service_unavailable",
                retryable=True,
            ) from exc
        self._sockets[job.id] = ws
        try:
            if spec.message is not None:
                await ws.send(json.dumps(spec.message))
            return await self._read(ws, progress)
        except ConnectionClosed as exc:
            raise ConnectorError(
                "WebSocket service closed the connection before a result",
                error_type="service_unavailable",
                retryable=True,
            ) from exc
        finally:
            self._sockets.pop(job.id, None)
            await ws.close()

    async def _read(self, ws: ClientConnection, progress: ProgressReporter) -> dict[str, Any]:
        # Every frame, not just the first: services stream progress before the result.
        async for frame in ws:
            if not isinstance(frame, str):
                continue
            try:
                data = json.loads(frame)
            except ValueError:
                log.debug("ignoring non-JSON frame from the service")
                continue
            if not isinstance(data, dict):
                continue
            kind = data.get("type")
            if kind == "progress":
                value = data.get("progress")
                if isinstance(value, int | float):
                    message = data.get("message")
                    await progress(float(value), message if isinstance(message, str) else None)
            elif kind in RESULT_TYPES:
                result = data.get("result", data)
                out = dict(result) if isinstance(result, dict) else {"result": result}
                out.setdefault("output_files", [])
                return out
            elif kind == "error":
                text = data.get("error") or data.get("message") or "service reported an error"
                raise ConnectorError(
                    f"WebSocket service failed: {text}",
                    error_type="service_error",
                    retryable=bool(data.get("retryable", False)),
                    details=data,
                )
        raise ConnectionClosed(None, None)
