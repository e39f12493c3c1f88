"""Helpers shared by the connector tests: a recording progress callback, job builders."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from empq.connectors.base import JobContext, MemoryArtifacts
from empq.models import Requirements


class Progress:
    """A progress callback that records every report and signals the first one."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.messages: list[str | None] = []
        self.started = asyncio.Event()

    async def __call__(
        self,
        progress: float,
        message: str | None = None,
        *,
        current_step: str | int | None = None,
        total_steps: int | None = None,
    ) -> None:
        self.values.append(progress)
        self.messages.append(message)
        self.started.set()


def make_job(
    payload: dict[str, Any], *, service: str, timeout_minutes: float = 1.0
) -> tuple[JobContext, MemoryArtifacts]:
    """A job for `service` whose artifacts land in memory."""
    artifacts = MemoryArtifacts()
    job = JobContext(
        id=uuid.uuid4().hex,
        type="test",
        payload=payload,
        requirements=Requirements(service_type=service, timeout_minutes=timeout_minutes),
        artifacts=artifacts,
    )
    return job, artifacts
