"""What the hub learns about its workers as they run: warm models and run times.

`warm_holders` feeds the choice between cold workers (`matching.eviction_cost`);
`record_run` keeps the per-signature run times the ETA of queued jobs is built from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from empq.matching import JobSpec
from empq.models import WorkerInfo

if TYPE_CHECKING:
    from empq.hub.registry import LocalWorker

#: Weight of the newest run in a worker's `run_seconds` averages.
RUN_EWMA = 0.3
#: Signatures a worker record keeps `run_seconds` for (the most recently run).
RUN_SIGNATURES = 32


def warm_holders(workers: Iterable[LocalWorker], spec: JobSpec) -> dict[str, int]:
    """Model -> how many of these workers hold it warm for the job's service (only for a
    job that names models: the choice between cold workers reads it)."""
    counts: dict[str, int] = {}
    if not spec.models:
        return counts
    service = spec.service_type or ""
    for lw in workers:
        for m in lw.models_loaded.get(service, ()):
            counts[m] = counts.get(m, 0) + 1
    return counts


def record_run(info: WorkerInfo, signature: str | None, seconds: float) -> None:
    """A job of `signature` completed after holding a slot `seconds`: update the worker's
    averages, per signature and over all its jobs (`"*"`)."""
    runs = info.run_seconds
    for key in ("*", signature):
        if key is None:
            continue
        old = runs.pop(key, None)  # re-inserted last: the oldest signatures go first
        runs[key] = seconds if old is None else old + RUN_EWMA * (seconds - old)
    while len(runs) > RUN_SIGNATURES:
        del runs[next(k for k in runs if k != "*")]
