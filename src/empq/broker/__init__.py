"""The job queue over Redis. See `core` for the design."""

from empq.broker.base import (
    PRIORITY_BANDS,
    Assignment,
    BrokerBase,
    Clock,
    Event,
    FailResult,
    SubmitResult,
    wall_clock_ms,
)
from empq.broker.core import Broker

__all__ = [
    "PRIORITY_BANDS",
    "Assignment",
    "Broker",
    "BrokerBase",
    "Clock",
    "Event",
    "FailResult",
    "SubmitResult",
    "wall_clock_ms",
]
