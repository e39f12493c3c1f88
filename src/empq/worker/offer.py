"""What the worker offers the hub: its capabilities plus the connectors', minus services down.

The connectors are asked what they add (services, models, GPU) at start and when a
service comes back (a ComfyUI down at start reports its checkpoints only later).
While some services are down and others up, the down ones are withdrawn from
`services`, so the hub gives this worker none of their jobs; with every service
down the worker claims nothing instead (`Worker.slots`) and keeps its services
listed, so explain can say why it is not taking them. Changes go to the hub as
`update_capabilities` with the top-level keys that changed.
"""

from __future__ import annotations

import asyncio
import logging

from empq.connectors.base import CapabilityAdditions, Connector
from empq.models import WorkerCapabilities
from empq.worker.capabilities import merge_connector_additions
from empq.worker.health import HealthMonitor

log = logging.getLogger("empq.worker")

#: How long a connector may take to describe itself.
CAPABILITIES_TIMEOUT = 30.0


class Offer:
    """The capabilities the worker registers with, kept current."""

    def __init__(self, base: WorkerCapabilities, health: HealthMonitor) -> None:
        self.base = base
        self.health = health
        self.additions: list[CapabilityAdditions] = []

    async def ask(self, connectors: list[Connector]) -> None:
        """Ask every connector what it adds (a failing one adds nothing)."""
        additions = []
        for connector in connectors:
            try:
                async with asyncio.timeout(CAPABILITIES_TIMEOUT):
                    additions.append(await connector.capabilities())
            except Exception:  # a connector that cannot describe itself still runs
                log.exception("connector %s capabilities unavailable", connector.name)
        self.additions = additions

    def current(self) -> WorkerCapabilities:
        """The base plus what the connectors added, without the services that are down."""
        merged = merge_connector_additions(self.base, self.additions)
        down = self.health.down_services()
        if down and self.health.any_healthy():
            merged.services = [s for s in merged.services if s not in down]
        return merged
