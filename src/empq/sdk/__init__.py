"""The Python SDK: `AsyncClient` (async first) and `Client`, its blocking facade (CONTRACT §8)."""

import logging

from empq.sdk.client import AsyncClient
from empq.sdk.results import (
    Explanation,
    JobPage,
    Match,
    RejectedWorker,
    SubmittedJob,
    WaitTimeout,
)
from empq.sdk.sync import Client
from empq.sdk.watching import job_is_final

# A library does not print on its own: warnings reach users through `job.warnings`
# and through logging once the application configures it.
logging.getLogger("empq.sdk").addHandler(logging.NullHandler())

__all__ = [
    "AsyncClient",
    "Client",
    "Explanation",
    "JobPage",
    "Match",
    "RejectedWorker",
    "SubmittedJob",
    "WaitTimeout",
    "job_is_final",
]
