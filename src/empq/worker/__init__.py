"""The empq worker: pulls jobs from a hub and runs them through connectors."""

from empq.worker.capabilities import load_capabilities
from empq.worker.runtime import Worker, run_worker

__all__ = ["Worker", "load_capabilities", "run_worker"]
