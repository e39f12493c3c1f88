"""Probing a real hub from outside: one message, and what the hub made of it."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.hub_fixtures import RawPeer

#: Error codes that mean "this socket has no right to send that".
REFUSALS = frozenset({"AUTH_FAILED", "NOT_REGISTERED"})


async def outcome(peer: RawPeer, message: dict[str, Any], reply: str | None) -> str:
    """'refused:<code>' or 'allowed', after the hub has handled `message`.

    The message carries an `id`; an error about it names it as `request_id`. Done when
    the error about it or its `reply` arrives, or (for a message that has no reply)
    when a `ping` sent after it is answered: such messages share the ping's lane, so
    the hub handled them first.
    """
    mid = uuid.uuid4().hex
    nonce = f"ping-{mid}"
    await peer.send({**message, "id": mid})
    await peer.send({"type": "ping", "worker_id": nonce})

    def settles(m: dict[str, Any]) -> bool:
        if m.get("type") == "error" and m.get("request_id") == mid:
            return True
        if reply is None:
            return m.get("type") == "pong" and m.get("worker_id") == nonce
        return m.get("type") == reply

    while True:
        try:
            m = await peer.recv()
        except TimeoutError:
            raise AssertionError(f"no outcome for {message}; got {peer.history[-5:]}") from None
        if m.get("type") == "error" and m.get("error_code") == "INTERNAL_ERROR":
            raise AssertionError(f"INTERNAL_ERROR for {message}: {m}")
        if settles(m):
            if m.get("type") == "error" and m.get("error_code") in REFUSALS:
                return f"refused:{m['error_code']}"
            return "allowed"
