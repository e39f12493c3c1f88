"""empq: a distributed, pull-based job queue for AI workloads on Redis.

What users import lives here::

    from empq import Client, AsyncClient, Connector, Job, JobStatus, connector
"""

from empq.connectors.base import Connector, JobContext
from empq.connectors.functions import JobCancelled, connector
from empq.errors import (
    AuthError,
    ConnectorError,
    EmpqError,
    HubUnavailable,
    InvalidTransition,
    JobNotFound,
    StaleClaim,
    ValidationError,
    WorkerNotFound,
)
from empq.models import Job, JobSubmission, Requirements, WorkerCapabilities
from empq.sdk import AsyncClient, Client, Explanation, JobPage, SubmittedJob, WaitTimeout
from empq.status import JobStatus, WorkerStatus

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AuthError",
    "Client",
    "Connector",
    "ConnectorError",
    "EmpqError",
    "Explanation",
    "HubUnavailable",
    "InvalidTransition",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobNotFound",
    "JobPage",
    "JobStatus",
    "JobSubmission",
    "Requirements",
    "StaleClaim",
    "SubmittedJob",
    "ValidationError",
    "WaitTimeout",
    "WorkerCapabilities",
    "WorkerNotFound",
    "WorkerStatus",
    "__version__",
    "connector",
]
