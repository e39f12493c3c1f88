"""The job and worker models of CONTRACT §2 and §4, validated with pydantic.

Every model that comes from outside forbids unknown fields, so a typo is an error
naming the field rather than a silently ignored setting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from empq.status import JobStatus, WorkerStatus, is_final

Priority = Annotated[int, Field(ge=0, le=100)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
#: An id or key a client names (customer, workflow, idempotency key).
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
#: A job's step within its workflow.
StepNumber = Annotated[int, Field(ge=0, lt=10**6)]
#: Milliseconds since the epoch (up to the year 2109).
EpochMs = Annotated[int, Field(ge=0, lt=2**42)]
#: A W3C `traceparent`: version, trace id, parent span id, flags (lower-case hex).
TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
TraceParent = Annotated[str, Field(pattern=TRACEPARENT_PATTERN)]


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) < len("http://x"):
        raise ValueError("must be an http:// or https:// URL")
    return value


#: A per-job callback URL.
WebhookUrl = Annotated[str, Field(max_length=2000), AfterValidator(_http_url)]


class Isolation(StrEnum):
    """Customer isolation level; ordered `none` < `loose` < `strict`."""

    NONE = "none"
    LOOSE = "loose"
    STRICT = "strict"

    @property
    def rank(self) -> int:
        return _ISOLATION_RANK[self]


_ISOLATION_RANK = {Isolation.NONE: 0, Isolation.LOOSE: 1, Isolation.STRICT: 2}


class Strict(BaseModel):
    """Base for inputs: unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")


class HardwareRequirements(Strict):
    """Minimums a worker's hardware must meet."""

    gpu_memory_gb: NonNegative | None = None
    cpu_cores: NonNegative | None = None
    ram_gb: NonNegative | None = None
    storage_gb: NonNegative | None = None


class Requirements(Strict):
    """What a job needs from the worker that runs it; every key optional."""

    service_type: str | None = None
    component: str | None = None
    workflow: str | None = None
    models: list[str] = Field(default_factory=list)
    hardware: HardwareRequirements = Field(default_factory=HardwareRequirements)
    customer_isolation: Isolation = Isolation.NONE
    quality_level: Literal["fast", "balanced", "quality"] | None = None
    timeout_minutes: Annotated[float, Field(gt=0, le=525_600, allow_inf_nan=False)] = 30
    geographic_region: str | None = None
    compliance: list[str] = Field(default_factory=list)
    cost_tier: Literal["economy", "standard", "premium"] | None = None


class JobSubmission(Strict):
    """A job as a client submits it (`POST /api/jobs`)."""

    type: Annotated[str, Field(min_length=1, max_length=200)]
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
    #: W3C trace context of the caller: the job's trace joins it (docs/observability.md).
    traceparent: TraceParent | None = None

    @property
    def effective_priority(self) -> int:
        """The priority it is claimed by, as far as the submission says.

        (A step that omits `workflow_priority` may inherit its workflow's in Redis.)
        """
        return self.workflow_priority if self.workflow_priority is not None else self.priority


class BatchSubmission(Strict):
    """`POST /api/jobs/batch`: all or nothing."""

    jobs: Annotated[list[JobSubmission], Field(min_length=1, max_length=10_000)]


class Job(BaseModel):
    """A job record as the hub stores and returns it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    type: str
    status: JobStatus
    priority: int = 50
    payload: dict[str, Any] = Field(default_factory=dict)
    requirements: Requirements = Field(default_factory=Requirements)
    customer_id: str | None = None
    max_retries: int = 3
    workflow_id: str | None = None
    workflow_priority: int | None = None
    workflow_datetime: int | None = None
    step_number: int | None = None
    webhook_url: str | None = None
    idempotency_key: str | None = None
    traceparent: str | None = None
    progress: float = 0
    message: str | None = None
    worker_id: str | None = None
    attempts: int = 0
    created_at: datetime | None = None
    assigned_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    error_details: dict[str, Any] | None = None
    position: int | None = None
    #: While queued: seconds until it should start, or None with `eta_reason` saying why.
    eta_seconds: float | None = None
    eta_reason: str | None = None
    retry_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        """Whether the job will not run again (unless an operator retries it)."""
        return is_final(self.status, self.retry_at is not None)


class Hardware(Strict):
    """What a worker's machine has."""

    #: Per GPU: a budget the jobs it runs reserve from (their `gpu_memory_gb`).
    gpu_memory_gb: NonNegative = 0
    #: GPUs of `gpu_memory_gb` each; a job's reservation goes on one of them.
    gpu_count: Annotated[int, Field(ge=1, le=64)] = 1
    gpu_model: str | None = None
    cpu_cores: NonNegative = 0
    ram_gb: NonNegative = 0
    storage_gb: NonNegative = 0


class CustomerAccess(Strict):
    """Which customers' jobs a worker may take, and how isolated."""

    isolation: Isolation = Isolation.NONE
    allowed_customers: list[str] | None = None
    max_concurrent_customers: Annotated[int, Field(ge=1)] | None = None


class Performance(Strict):
    """How much a worker does at once, and at what quality."""

    concurrent_jobs: Annotated[int, Field(ge=1, le=1024)] = 1
    quality_levels: list[str] = Field(default_factory=lambda: ["fast", "balanced", "quality"])


class Location(Strict):
    """Where a worker runs and what it complies with."""

    region: str | None = None
    compliance: list[str] = Field(default_factory=list)


class Cost(Strict):
    """A worker's price tier."""

    tier: Literal["economy", "standard", "premium"] | None = None


class JobAffinity(Strict):
    """Soft preferences: used only to break ties."""

    preferred_types: list[str] = Field(default_factory=list)
    preferred_customers: list[str] = Field(default_factory=list)


class JobAntiAffinity(Strict):
    """Hard exclusions by type or customer."""

    avoided_types: list[str] = Field(default_factory=list)
    avoided_customers: list[str] = Field(default_factory=list)


class WorkerCapabilities(Strict):
    """What a worker can run (CONTRACT §4, "Worker capabilities")."""

    services: list[str] = Field(default_factory=list)
    components: list[str] | Literal["all"] = "all"
    workflows: list[str] | Literal["all"] = "all"
    models: dict[str, list[str]] = Field(default_factory=dict)
    hardware: Hardware = Field(default_factory=Hardware)
    customer_access: CustomerAccess = Field(default_factory=CustomerAccess)
    performance: Performance = Field(default_factory=Performance)
    location: Location = Field(default_factory=Location)
    cost: Cost = Field(default_factory=Cost)
    job_affinity: JobAffinity = Field(default_factory=JobAffinity)
    job_anti_affinity: JobAntiAffinity = Field(default_factory=JobAntiAffinity)


#: Most warm models a worker reports per service; a longer list is refused.
MODELS_LOADED_MAX = 64

#: `models_loaded`: service -> the model names it holds warm, most recent first.
ModelsLoaded = dict[
    Annotated[str, Field(min_length=1, max_length=200)],
    Annotated[list[Annotated[str, Field(min_length=1, max_length=500)]], Field(max_length=64)],
]


class WorkerInfo(BaseModel):
    """A worker as the registry stores and `GET /api/workers` returns it."""

    worker_id: str
    status: WorkerStatus = WorkerStatus.IDLE
    capabilities: WorkerCapabilities = Field(default_factory=WorkerCapabilities)
    current_jobs: list[str] = Field(default_factory=list)
    connected: bool = True
    hub_id: str | None = None
    registered_at: datetime | None = None
    last_heartbeat: datetime | None = None
    jobs_completed: int = 0
    jobs_failed: int = 0
    system_info: dict[str, Any] | None = None
    connector_status: dict[str, Any] | None = None
    #: Models it holds warm per service, most recent first (CONTRACT §10).
    models_loaded: dict[str, list[str]] = Field(default_factory=dict)
    #: Recent seconds a job of each requirement signature held one of its slots (EWMA);
    #: "*" over all its jobs. The ETA of queued jobs is built from these.
    run_seconds: dict[str, float] = Field(default_factory=dict)


def utc_from_ms(ms: int | float | None) -> datetime | None:
    """An ISO-able UTC datetime from epoch milliseconds (None stays None)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
