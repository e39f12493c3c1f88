"""`simulation`: pretends to work for a while in steps; for tests, demos and benchmarks."""

from __future__ import annotations

import asyncio
import random
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from empq.connectors.base import (
    Connector,
    JobContext,
    ProgressReporter,
    invalid_payload,
    payload_errors,
)
from empq.errors import ConnectorError


class SimulationPayload(BaseModel):
    """What a simulation job may say; anything else in the payload is ignored."""

    model_config = ConfigDict(extra="ignore")

    duration: Annotated[float, Field(ge=0, le=24 * 3600)] | None = None
    steps: Annotated[int, Field(ge=1, le=100_000)] | None = None
    fail: bool = False


class SimulationConnector(Connector):
    """Sleeps `duration` seconds in `steps` steps, reporting progress after each.

    Payload `duration`, `steps` and `fail` override `EMPQ_SIMULATION_*`; `fail: true`
    (or a draw under `EMPQ_SIMULATION_FAILURE_RATE`) fails the attempt, retryably.
    A zero duration reports no intermediate progress, so benchmarks measure the queue.
    """

    shares_worker_loop = True  # async throughout, never blocks
    name = "simulation"
    services = ("simulation",)

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        """Simulate the job; see the class docstring."""
        try:
            p = SimulationPayload.model_validate(job.payload)
        except ValidationError as exc:
            raise invalid_payload(job, "bad simulation parameters", payload_errors(exc)) from exc
        duration = self.settings.simulation_duration if p.duration is None else p.duration
        steps = self.settings.simulation_steps if p.steps is None else p.steps
        if duration > 0:
            for step in range(1, steps + 1):
                await asyncio.sleep(duration / steps)
                await progress(
                    100 * step / steps, f"step {step}/{steps}", current_step=step, total_steps=steps
                )
        rate = self.settings.simulation_failure_rate
        if p.fail or (rate > 0 and random.random() < rate):
            raise ConnectorError(
                f"job {job.id}: simulated failure", error_type="simulated_failure", retryable=True
            )
        return {"simulated": True, "steps": steps, "output_files": []}
