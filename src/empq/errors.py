"""Exceptions empq raises. Every one derives from `EmpqError`.

EmpqError
├── ValidationError        bad input; `.errors` lists {field, message}
├── JobNotFound            no job with that id; `.job_id`
├── WorkerNotFound         no worker with that id; `.worker_id`
├── InvalidTransition      the job's status does not allow it (cancel a completed job)
├── StaleClaim             a claim token that is not the job's current one
├── AuthError              missing or wrong API key or worker token
├── Forbidden              a customer key reached past its customer or priority ceiling
├── CustomerNotFound       a customer key named another customer (answered as not found)
├── RateLimited            a customer submitting past its rate; `.retry_after` (s)
├── HubUnavailable         the hub cannot be reached
├── DependencyChanged      an installed library no longer offers what empq relies on
└── ConnectorError         a connector could not run a job; `.error_type`, `.retryable`
"""

from __future__ import annotations

from typing import Any


class EmpqError(Exception):
    """Root of every empq exception; `code` is the machine-readable name."""

    code = "EMPQ_ERROR"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationError(EmpqError):
    """Input that does not fit the contract; `errors` names every bad field."""

    code = "VALIDATION_ERROR"

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, details=errors or [])
        self.errors = errors or []


class DependencyChanged(EmpqError):
    """An installed library no longer offers what empq relies on (raised at start-up)."""

    code = "DEPENDENCY_CHANGED"


class JobNotFound(EmpqError):
    """No job has this id (or it was cleaned up after its retention)."""

    code = "JOB_NOT_FOUND"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job '{job_id}' not found")
        self.job_id = job_id


class WorkerNotFound(EmpqError):
    """No worker has this id."""

    code = "WORKER_NOT_FOUND"

    def __init__(self, worker_id: str) -> None:
        super().__init__(f"worker '{worker_id}' not found")
        self.worker_id = worker_id


class InvalidTransition(EmpqError):
    """The job's current status does not allow the requested change."""

    code = "INVALID_TRANSITION"

    def __init__(self, job_id: str, status: str, action: str) -> None:
        super().__init__(f"cannot {action} job '{job_id}': it is {status}")
        self.job_id = job_id
        self.status = status
        self.action = action


class StaleClaim(EmpqError):
    """A message carried a claim token that no longer holds the job."""

    code = "STALE_CLAIM"

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(f"claim on job '{job_id}' refused: {reason}")
        self.job_id = job_id
        self.reason = reason


class AuthError(EmpqError):
    """A missing or wrong API key or worker token."""

    code = "AUTH_FAILED"


class Forbidden(EmpqError):
    """A customer API key asked for something outside its customer or priority ceiling."""

    code = "FORBIDDEN"


class CustomerNotFound(EmpqError):
    """A customer API key named another customer: answered as not found, never 403."""

    code = "NOT_FOUND"

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer '{customer_id}' not found")
        self.customer_id = customer_id


class RateLimited(EmpqError):
    """A customer submitted faster than its `EMPQ_CUSTOMER_SUBMIT_RATE`."""

    code = "RATE_LIMITED"

    def __init__(self, customer_id: str, retry_after: float) -> None:
        super().__init__(
            f"customer '{customer_id}' is submitting too fast; retry in {retry_after:g} s",
            details={"retry_after": retry_after},
        )
        self.retry_after = retry_after


class HubUnavailable(EmpqError):
    """The hub did not answer."""

    code = "HUB_UNAVAILABLE"


class ConnectorError(EmpqError):
    """A connector could not run a job; says what kind of failure and whether to retry."""

    code = "CONNECTOR_ERROR"

    def __init__(
        self, message: str, *, error_type: str, retryable: bool, details: Any = None
    ) -> None:
        super().__init__(message, details=details)
        self.error_type = error_type
        self.retryable = retryable
