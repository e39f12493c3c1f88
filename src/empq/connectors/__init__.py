"""Service adapters: the `Connector` port and the built-in connectors beside it."""

from empq.connectors.base import (
    ArtifactSink,
    CapabilityAdditions,
    Connector,
    ConnectorHealth,
    JobContext,
    MemoryArtifacts,
    ProgressReporter,
)
from empq.connectors.registry import create_connectors, load_connector_class

__all__ = [
    "ArtifactSink",
    "CapabilityAdditions",
    "Connector",
    "ConnectorHealth",
    "JobContext",
    "MemoryArtifacts",
    "ProgressReporter",
    "create_connectors",
    "load_connector_class",
]
