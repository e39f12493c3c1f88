"""The SDK's WebSocket to the hub: connect with auth, read JSON messages, back off on loss."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from empq.errors import AuthError, EmpqError, HubUnavailable
from empq.sdk.transport import auth_headers

#: Largest message the SDK accepts; the hub caps its own at 10 MB by default.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


async def open_socket(
    ws_url: str, api_key: str | None, *, open_timeout: float = 10.0
) -> ClientConnection:
    """A connected WebSocket to the hub, or `AuthError` / `HubUnavailable` saying why not."""
    try:
        return await connect(
            ws_url,
            additional_headers=auth_headers(api_key),
            open_timeout=open_timeout,
            max_size=MAX_MESSAGE_BYTES,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise AuthError(f"hub refused the WebSocket ({status})") from exc
        raise HubUnavailable(f"hub WebSocket at {ws_url} answered HTTP {status}") from exc
    except InvalidURI as exc:
        raise HubUnavailable(f"bad WebSocket URL {ws_url!r}") from exc
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        raise HubUnavailable(f"hub WebSocket at {ws_url} is unreachable: {exc}") from exc


def decode(raw: str | bytes) -> dict[str, Any] | None:
    """One hub message as a dict; None for anything that is not a JSON object."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


async def recv_until(
    ws: ClientConnection, message_type: str, *, within: float = 10.0
) -> dict[str, Any]:
    """Read messages until one of `message_type` arrives (an `error` reply raises)."""
    async with asyncio.timeout(within):
        while True:
            message = decode(await ws.recv())
            if message is None:
                continue
            if message.get("type") == message_type:
                return message
            if message.get("type") == "error":
                code = message.get("error_code")
                text = str(message.get("error") or "error")
                if code == "AUTH_FAILED":
                    raise AuthError(text, details=message.get("details"))
                raise EmpqError(f"hub refused the request: {text}", details=message.get("details"))


class Backoff:
    """Exponential back-off with jitter between reconnects; gives up after `attempts`."""

    def __init__(self, *, attempts: int = 8, base: float = 0.25, cap: float = 5.0) -> None:
        self.attempts = attempts
        self.base = base
        self.cap = cap
        self.failures = 0

    def reset(self) -> None:
        """Call after a connection worked."""
        self.failures = 0

    async def wait(self, error: Exception) -> None:
        """Sleep before the next try, or raise `HubUnavailable` when out of tries."""
        self.failures += 1
        if self.failures > self.attempts:
            raise HubUnavailable(f"lost the hub WebSocket and could not reconnect: {error}")
        delay = min(self.cap, self.base * 2 ** (self.failures - 1))
        await asyncio.sleep(delay * (0.5 + random.random()))
