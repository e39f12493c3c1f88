"""The hub → worker messages the worker acts on, validated at the edge.

Hub messages may carry fields this worker does not know (newer hubs); those are
ignored, but the fields it relies on must be present and well-typed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from empq.models import Requirements


class HubMessage(BaseModel):
    """Fields every hub message has; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    type: str


class Welcome(HubMessage):
    """`connection_established` or `worker_registered`."""

    hub_http_url: str | None = None
    heartbeat_timeout: float | None = None
    #: The longest a claim may wait on this hub (absent: a hub that does not park claims).
    claim_wait_max: float | None = None


class JobAssigned(HubMessage):
    """`job_assigned`: a job this worker now holds under `claim_token`."""

    job_id: str = Field(min_length=1)
    job_type: str = ""
    priority: int = 50
    payload: dict[str, Any] = Field(default_factory=dict)
    requirements: Requirements = Field(default_factory=Requirements)
    claim_token: str = Field(min_length=1)
    claim_timeout: float | None = None
    customer_id: str | None = None
    workflow_id: str | None = None
    step_number: int | None = None
    #: The job's trace context (W3C), when the hub traces or the submitter sent one.
    traceparent: str | None = None


class CancelJobOrder(HubMessage):
    """`cancel_job`: stop working on `job_id`; the hub already marked it cancelled."""

    job_id: str
    reason: str | None = None


class ServerDisconnect(HubMessage):
    """`server_disconnect`: the hub is going away; come back after `reconnect_after` s."""

    reason: str | None = None
    reconnect_after: float | None = Field(default=None, ge=0, le=3600)


class HubError(HubMessage):
    """`error`: a refused message (stale claim, bad field, auth)."""

    error: str = ""
    error_code: str | None = None
    job_id: str | None = None
    details: Any = None
    #: The `type` of the message refused, when the hub says (`UNAVAILABLE` does).
    message_type: str | None = None
