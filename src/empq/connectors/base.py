"""The port every service adapter plugs into: `Connector`, the job it is handed, and progress.

A connector turns one job into calls to one service. The worker owns the job's
lifecycle (accept, progress messages, complete or fail, claim tokens); the connector
only does the work and says how it went:

- `process(job, progress)` returns the result dict, or raises `ConnectorError`
  with an `error_type` and whether a retry can help;
- `cancel(job)` stops the service's work for a job (the worker then cancels the task);
- `health()` and `capabilities()` feed heartbeats and registration;
- `note_models(service, names)` records models the service now holds warm, and
  `models_loaded()` reports them (the hub routes jobs to workers with their models warm).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, Field

from empq.config import WorkerSettings
from empq.errors import ConnectorError
from empq.models import Requirements


class ArtifactSink(Protocol):
    """Where a connector puts output files; returns the URL clients fetch them from."""

    async def save(self, name: str, data: bytes, content_type: str) -> str:
        """Store `data` as artifact `name` of the job and return its URL."""
        ...


class MemoryArtifacts:
    """An `ArtifactSink` that keeps files in memory: for calling a connector directly."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}

    async def save(self, name: str, data: bytes, content_type: str) -> str:
        """Keep the file and return a `memory://` URL naming it."""
        self.files[name] = (data, content_type)
        return f"memory://{name}"


class ProgressReporter(Protocol):
    """The `progress` callback a connector reports through (0..100)."""

    async def __call__(
        self,
        progress: float,
        message: str | None = None,
        *,
        current_step: str | int | None = None,
        total_steps: int | None = None,
    ) -> None:
        """Report how far the job is; cheap to call often (the worker throttles)."""
        ...


async def no_progress(
    progress: float,
    message: str | None = None,
    *,
    current_step: str | int | None = None,
    total_steps: int | None = None,
) -> None:
    """A `ProgressReporter` that drops every report."""


@dataclass(slots=True)
class JobContext:
    """The job a connector is asked to run: what the client submitted, plus an artifact sink."""

    id: str
    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    requirements: Requirements = field(default_factory=Requirements)
    priority: int = 50
    customer_id: str | None = None
    workflow_id: str | None = None
    step_number: int | None = None
    artifacts: ArtifactSink = field(default_factory=MemoryArtifacts)
    #: Set by `mark_started` once the service accepted the job. Until then a
    #: `service_unavailable` failure hands the job back without counting an attempt.
    service_started: bool = False

    def mark_started(self) -> None:
        """The service has the job now: from here on a failure is an attempt."""
        self.service_started = True

    @property
    def timeout_seconds(self) -> float:
        """The job's own time limit (`requirements.timeout_minutes`) in seconds."""
        return float(self.requirements.timeout_minutes) * 60


class ConnectorHealth(BaseModel):
    """What `health()` reports; goes into heartbeats and the worker's `/ready`."""

    healthy: bool
    detail: str | None = None
    info: dict[str, Any] = Field(default_factory=dict)


class CapabilityAdditions(BaseModel):
    """Capabilities a connector contributes to the worker's registration."""

    services: list[str] = Field(default_factory=list)
    models: dict[str, list[str]] = Field(default_factory=dict)
    gpu_memory_gb: float | None = None
    gpu_model: str | None = None


class Connector(ABC):
    """Base class of every connector; subclass it and implement `process`.

    Subclasses set `name` (how `EMPQ_CONNECTORS` names them) and `services` (the
    `requirements.service_type` values they serve). Constructors take the worker's
    settings only, so the registry can build any connector the same way.
    """

    name: ClassVar[str] = ""
    services: ClassVar[tuple[str, ...]] = ()
    #: Most warm models remembered per service (the least recently used go first).
    warm_models_max: ClassVar[int] = 16
    #: True when its async code never blocks (the built-ins): it then runs on the
    #: worker's own event loop. Otherwise it gets a loop and a thread of its own, so
    #: blocking code in `process` cannot stall heartbeats (see `empq.worker.hosting`).
    shares_worker_loop: ClassVar[bool] = False

    def __init__(self, settings: WorkerSettings | None = None) -> None:
        self.settings = settings if settings is not None else WorkerSettings()
        self._warm: dict[str, list[str]] = {}
        # Noted from the connector's loop, read from the worker's (another thread).
        self._warm_lock = threading.Lock()

    def note_models(self, service: str, names: Iterable[str]) -> None:
        """`names` are now warm in `service`, the first most recently used."""
        fresh = [n for n in dict.fromkeys(names) if n]
        if not fresh:
            return
        with self._warm_lock:
            kept = [n for n in self._warm.get(service, []) if n not in fresh]
            self._warm[service] = (fresh + kept)[: self.warm_models_max]

    def forget_models(self, service: str, names: Iterable[str] | None = None) -> None:
        """`names` (all of the service's, when None) are no longer warm."""
        gone = None if names is None else set(names)
        with self._warm_lock:
            if gone is None:
                self._warm.pop(service, None)
                return
            self._warm[service] = [n for n in self._warm.get(service, []) if n not in gone]

    def models_loaded(self) -> dict[str, list[str]]:
        """The models it holds warm, per service, most recent first."""
        with self._warm_lock:
            return {s: list(names) for s, names in self._warm.items() if names}

    async def start(self) -> None:
        """Open clients and sockets; called once before the first job."""
        return

    async def close(self) -> None:
        """Release what `start` opened; called once at shutdown."""
        return

    @abstractmethod
    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        """Run `job` and return its result; raise `ConnectorError` on failure."""

    async def cancel(self, job: JobContext) -> None:
        """Stop the service's work on `job` (the worker cancels `process` right after)."""
        return

    async def health(self) -> ConnectorHealth:
        """Whether the service answers; the default assumes it does."""
        return ConnectorHealth(healthy=True)

    async def capabilities(self) -> CapabilityAdditions:
        """What this connector adds to the worker's capabilities."""
        return CapabilityAdditions(services=list(self.services))


def invalid_payload(job: JobContext, problem: str, details: Any = None) -> ConnectorError:
    """The error for a payload the connector cannot use: fails at once, never retried.

    `details` given as `[{field, message}]` (see `payload_errors`) is spelled out in
    the message too, so the job's `error` names what to fix.
    """
    from empq.connectors.service_errors import field_errors

    listed = field_errors(details)
    if listed:
        problem = f"{problem}: {listed}"
    return ConnectorError(
        f"job {job.id}: invalid payload: {problem}",
        error_type="invalid_payload",
        retryable=False,
        details=details,
    )


def payload_errors(exc: Exception) -> list[dict[str, str]]:
    """`[{field, message}]` from a pydantic ValidationError (else the exception text)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
    return [{"field": "", "message": str(exc)}]
