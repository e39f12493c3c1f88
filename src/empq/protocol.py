"""The WebSocket messages of CONTRACT §4, as one pydantic discriminated union per direction.

The hub, the worker, the SDK and the dashboard's tests all use these models, so a
message means the same thing everywhere. Inbound models forbid unknown fields;
`parse_inbound` turns raw text into a model or a precise `ProtocolError`.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import to_json

from empq import strict_json
from empq.models import (
    EpochMs,
    JobSubmission,
    ModelsLoaded,
    Priority,
    Requirements,
    ShortText,
    StepNumber,
    TraceParent,
    WebhookUrl,
    WorkerCapabilities,
)
from empq.status import JobStatus, WorkerStatus


def now_ms() -> int:
    """Wall-clock time in integer milliseconds, the protocol's `timestamp` unit."""
    return time.time_ns() // 1_000_000


class Message(BaseModel):
    """Fields every message carries."""

    model_config = ConfigDict(extra="forbid")

    type: str
    timestamp: int = Field(default_factory=now_ms)
    id: str | None = None
    source: str | None = None

    def dump(self) -> str:
        """The message as JSON text for the wire."""
        return self.model_dump_json(exclude_none=True)


class OutMessage(Message):
    """A message the hub sends; receivers ignore fields they do not know."""

    model_config = ConfigDict(extra="allow")


# --------------------------------------------------------------------------- worker → hub


class RegisterWorker(Message):
    type: Literal["register_worker"]
    worker_id: Annotated[str, Field(min_length=1, max_length=200)]
    capabilities: WorkerCapabilities = Field(default_factory=WorkerCapabilities)
    status: WorkerStatus = WorkerStatus.IDLE
    auth_token: str | None = None
    current_jobs: list[str] = Field(default_factory=list)
    models_loaded: ModelsLoaded | None = None


#: Longest `wait_seconds` a claim may ask for; the hub may advertise less (`claim_wait_max`).
CLAIM_WAIT_LIMIT = 3600.0


class ClaimNext(BaseModel):
    """A `claim_job` carried by `complete_job`, `fail_job` or `release_job` (CONTRACT §9)."""

    model_config = ConfigDict(extra="forbid")

    max_jobs: Annotated[int, Field(ge=1, le=1024)] = 1
    wait_seconds: Annotated[float, Field(ge=0, le=CLAIM_WAIT_LIMIT, allow_inf_nan=False)] = 0


class ClaimJob(Message):
    type: Literal["claim_job"]
    worker_id: str | None = None
    max_jobs: Annotated[int, Field(ge=1, le=1024)] = 1
    preferred_types: list[str] | None = None
    #: Park the claim this long when nothing can be given (capped at `claim_wait_max`).
    wait_seconds: Annotated[float, Field(ge=0, le=CLAIM_WAIT_LIMIT, allow_inf_nan=False)] = 0


class JobAcceptedByWorker(Message):
    type: Literal["job_accepted_by_worker"]
    job_id: str
    claim_token: str
    worker_id: str | None = None


class UpdateJobProgress(Message):
    type: Literal["update_job_progress"]
    job_id: str
    claim_token: str
    progress: Annotated[float, Field(ge=0, le=100)]
    status: Literal["in_progress", "accepted"] | None = None
    message: str | None = None
    current_step: str | int | None = None
    total_steps: int | None = None
    estimated_completion: int | None = None
    worker_id: str | None = None


class CompleteJob(Message):
    type: Literal["complete_job"]
    job_id: str
    claim_token: str
    result: dict[str, Any] = Field(default_factory=dict)
    processing_time: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    worker_id: str | None = None
    claim_next: ClaimNext | None = None


class FailJob(Message):
    type: Literal["fail_job"]
    job_id: str
    claim_token: str
    error: str
    retry: bool = True
    error_details: dict[str, Any] | None = None
    worker_id: str | None = None
    claim_next: ClaimNext | None = None


class ReleaseJob(Message):
    """A hand-back: the worker could not start the job; no attempt is counted."""

    type: Literal["release_job"]
    job_id: str
    claim_token: str
    reason: Annotated[str, Field(max_length=1000)] | None = None
    worker_id: str | None = None
    claim_next: ClaimNext | None = None


class WorkerHeartbeat(Message):
    type: Literal["worker_heartbeat"]
    worker_id: str | None = None
    status: WorkerStatus = WorkerStatus.IDLE
    current_jobs: list[str] = Field(default_factory=list)
    system_info: dict[str, Any] | None = None
    connector_status: dict[str, Any] | None = None
    models_loaded: ModelsLoaded | None = None


class WorkerStatusMessage(Message):
    type: Literal["worker_status"]
    worker_id: str | None = None
    status: WorkerStatus
    available_slots: Annotated[int, Field(ge=0)] | None = None
    capabilities: WorkerCapabilities | None = None
    models_loaded: ModelsLoaded | None = None


class UpdateCapabilities(Message):
    type: Literal["update_capabilities"]
    worker_id: str | None = None
    capability_changes: dict[str, Any]


class Disconnect(Message):
    type: Literal["disconnect"]
    worker_id: str | None = None
    reason: str | None = None


# --------------------------------------------------------------------------- client → hub


class RegisterClient(Message):
    type: Literal["register_client"]
    client_type: Literal["job_client", "monitor"] = "job_client"
    client_id: str | None = None
    api_key: str | None = None


class SubmitJob(Message):
    """`submit_job`: the submission fields, with `job_type` for the job's type.

    The same types and constraints as `JobSubmission` (REST), so a body REST refuses
    with 422 is refused here with a `VALIDATION_ERROR` naming the same field.
    """

    type: Literal["submit_job"]
    job_type: Annotated[str, Field(min_length=1, max_length=200)]
    priority: Priority = 50
    payload: dict[str, Any] = Field(default_factory=dict)
    requirements: Requirements = Field(default_factory=Requirements)
    customer_id: ShortText | None = None
    max_retries: Annotated[int, Field(ge=0, le=1000)] = 3
    workflow_id: ShortText | None = None
    workflow_priority: Priority | None = None
    workflow_datetime: EpochMs | None = None
    step_number: StepNumber | None = None
    webhook_url: WebhookUrl | None = None
    idempotency_key: ShortText | None = None
    traceparent: TraceParent | None = None

    def to_submission(self) -> JobSubmission:
        """The same job as a REST submission (validated again there)."""
        d = self.model_dump(exclude={"type", "timestamp", "id", "source", "job_type"})
        d["type"] = self.job_type
        return JobSubmission.model_validate(d)


class RequestJobStatus(Message):
    type: Literal["request_job_status"]
    job_id: str


class CancelJob(Message):
    type: Literal["cancel_job"]
    job_id: str
    reason: str | None = None


class SubscribeJob(Message):
    type: Literal["subscribe_job", "unsubscribe_job"]
    job_id: str


class NotificationFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str | None = None
    job_types: list[str] | None = None
    priority_min: Annotated[int, Field(ge=0, le=100)] | None = None
    status: list[JobStatus] | None = None


class SubscribeJobNotifications(Message):
    type: Literal["subscribe_job_notifications"]
    enabled: bool = True
    filters: NotificationFilters = Field(default_factory=NotificationFilters)
    since: str | None = None  # an event id to replay from (catch-up after reconnect)


class SubscribeStats(Message):
    type: Literal["subscribe_stats"]
    enabled: bool = True
    interval_seconds: Annotated[float, Field(gt=0, le=3600)] | None = None


class RequestStats(Message):
    type: Literal["request_stats"]


class SubscribeWorkerUpdates(Message):
    type: Literal["subscribe_worker_updates"]
    enabled: bool = True
    worker_filters: dict[str, Any] | None = None


class Ping(Message):
    type: Literal["ping"]
    worker_id: str | None = None


InboundMessage = Annotated[
    RegisterWorker
    | ClaimJob
    | JobAcceptedByWorker
    | UpdateJobProgress
    | CompleteJob
    | FailJob
    | ReleaseJob
    | WorkerHeartbeat
    | WorkerStatusMessage
    | UpdateCapabilities
    | Disconnect
    | RegisterClient
    | SubmitJob
    | RequestJobStatus
    | CancelJob
    | SubscribeJob
    | SubscribeJobNotifications
    | SubscribeStats
    | RequestStats
    | SubscribeWorkerUpdates
    | Ping,
    Field(discriminator="type"),
]

_inbound: TypeAdapter[InboundMessage] = TypeAdapter(InboundMessage)

INBOUND_TYPES: frozenset[str] = frozenset(
    t
    for model in (
        RegisterWorker,
        ClaimJob,
        JobAcceptedByWorker,
        UpdateJobProgress,
        CompleteJob,
        FailJob,
        ReleaseJob,
        WorkerHeartbeat,
        WorkerStatusMessage,
        UpdateCapabilities,
        Disconnect,
        RegisterClient,
        SubmitJob,
        RequestJobStatus,
        CancelJob,
        SubscribeJob,
        SubscribeJobNotifications,
        SubscribeStats,
        RequestStats,
        SubscribeWorkerUpdates,
        Ping,
    )
    for t in model.model_fields["type"].annotation.__args__  # type: ignore[union-attr]
)


class ProtocolError(Exception):
    """A message the hub cannot act on; `code` goes out as `error_code`."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class UnknownMessageType(ProtocolError):
    """A well-formed message whose `type` the protocol does not have."""

    def __init__(self, message_type: str) -> None:
        super().__init__("UNKNOWN_TYPE", f"unknown message type '{message_type}'")
        self.message_type = message_type


def parse_inbound(raw: str | bytes) -> InboundMessage:
    """One inbound message from wire text, or `ProtocolError` saying what is wrong."""
    try:
        data = strict_json.loads(raw)
    except strict_json.StrictJsonError as exc:
        details = [{"field": exc.field, "message": exc.message}] if exc.field else None
        raise ProtocolError(exc.code, exc.message, details) from exc
    if not isinstance(data, dict):
        raise ProtocolError("INVALID_MESSAGE", "message must be a JSON object")
    mtype = data.get("type")
    if not isinstance(mtype, str):
        raise ProtocolError("INVALID_MESSAGE", "message has no string 'type' field")
    if mtype not in INBOUND_TYPES:
        raise UnknownMessageType(mtype)
    try:
        return _inbound.validate_python(data)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        fields = ", ".join(d["field"] or "(message)" for d in details)
        raise ProtocolError(
            "VALIDATION_ERROR", f"invalid '{mtype}' message: bad fields {fields}", details
        ) from exc


# --------------------------------------------------------------------------- hub → peers


def wire(message_type: str, **fields: Any) -> str:
    """The JSON text of a hub message of plain JSON fields, as `out(...).dump()` gives.

    For the hot path (acks, offers): no model is built, None values are dropped.
    """
    body = {"type": message_type, "timestamp": now_ms()}
    body.update((k, v) for k, v in fields.items() if v is not None)
    return dumps(body)


def dumps(value: Any) -> str:
    """Compact JSON text, by pydantic-core's serializer (Rust; a third of `json.dumps`'s
    cost here, with non-ASCII text written as UTF-8 rather than escaped)."""
    return to_json(value).decode()


def out(message_type: str, **fields: Any) -> OutMessage:
    """A hub message of `message_type` with these fields (None values are dropped on dump)."""
    return OutMessage(type=message_type, **fields)


def error_message(code: str, message: str, details: Any = None, **extra: Any) -> OutMessage:
    """The `error` reply of CONTRACT §4."""
    return OutMessage(type="error", error=message, error_code=code, details=details, **extra)
