"""Who may send which WebSocket message (docs/security.md, "Rights by role").

A socket's rights come only from what it presented, never from a message it sent:

- client messages need an API key when `EMPQ_API_KEYS` is set, presented on the
  upgrade (`Authorization: Bearer`, `?token=` or `?api_key=`) or in
  `register_client`'s `api_key`;
- worker messages need a registration on this socket, and `register_worker` needs a
  worker token when `EMPQ_WORKER_TOKENS` is set (checked in `worker_handlers`).

A worker's registration or token grants no client message; an API key grants no
worker message. `OPEN` messages check their own credentials or need none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from empq.protocol import OutMessage, ProtocolError, error_message

if TYPE_CHECKING:
    from empq.hub.connections import Connection
    from empq.hub.runtime import Hub

CLIENT_MESSAGES = frozenset(
    {
        "submit_job",
        "request_job_status",
        "cancel_job",
        "subscribe_job",
        "unsubscribe_job",
        "subscribe_job_notifications",
        "subscribe_stats",
        "request_stats",
        "subscribe_worker_updates",
    }
)
WORKER_MESSAGES = frozenset(
    {
        "claim_job",
        "job_accepted_by_worker",
        "update_job_progress",
        "complete_job",
        "fail_job",
        "release_job",
        "worker_heartbeat",
        "worker_status",
        "update_capabilities",
        "disconnect",
    }
)
#: Messages that carry their own credential (`register_*`) or need none (`ping`).
OPEN_MESSAGES = frozenset({"register_worker", "register_client", "ping"})


def refusal_for(hub: Hub, conn: Connection, message_type: str) -> ProtocolError | None:
    """Why this socket may not send `message_type` (None: it may)."""
    if message_type in OPEN_MESSAGES:
        return None
    if message_type in CLIENT_MESSAGES:
        if hub.settings.api_keys and not conn.api_key_ok:
            return ProtocolError(
                "AUTH_FAILED",
                "API key required: present one on connect (Authorization: Bearer, "
                "?token=) or in register_client's api_key",
            )
        return None
    if message_type in WORKER_MESSAGES:
        if conn.worker is None:
            return ProtocolError("NOT_REGISTERED", "send register_worker before this message")
        return None
    # A message type nobody classified is refused rather than open by default.
    return ProtocolError("AUTH_FAILED", f"'{message_type}' is not allowed on this socket")


def validation_reply(exc: PydanticValidationError, msg: Any) -> OutMessage:
    """The `VALIDATION_ERROR` reply for a value refused past the edge, naming its fields."""
    details = [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
        for e in exc.errors(include_url=False)
    ]
    fields = ", ".join(dict.fromkeys(d["field"] or "(message)" for d in details))
    return error_message(
        "VALIDATION_ERROR",
        f"invalid '{msg.type}' message: bad fields {fields}",
        details,
        request_id=getattr(msg, "id", None),
        job_id=getattr(msg, "job_id", None),
    )
