"""When a queued job should start: the ETA of CONTRACT §10, as plain arithmetic.

No I/O: the hub gathers how many capable jobs are ahead, the capable workers' slots
and their recent run times, and `estimate` turns those into seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Capacity:
    """One capable worker, as the estimate sees it."""

    slots: int
    #: Slots not running a job now.
    free: int
    #: Its recent seconds per job of this kind (None: it has not run one yet).
    run_seconds: float | None


@dataclass(frozen=True, slots=True)
class Estimate:
    """An ETA in seconds, or None and why there is none."""

    seconds: float | None
    reason: str | None = None


def estimate(ahead: int, workers: Sequence[Capacity], fallback_run: float | None) -> Estimate:
    """Seconds until a job with `ahead` capable jobs before it starts.

    The capable workers finish jobs at a rate of Σ slots / run seconds (a worker with
    no run of its own counts at `fallback_run`, the fleet's recent average). The job
    starts at once while free slots outnumber the jobs ahead of it; otherwise it waits
    for `ahead - free + 1` jobs to end at that rate.
    """
    if not workers:
        return Estimate(None, "no connected worker can run this job")
    free = sum(w.free for w in workers)
    if ahead < free:
        return Estimate(0.0)
    rate = 0.0
    for w in workers:
        run = w.run_seconds if w.run_seconds is not None else fallback_run
        if run is not None:
            rate += w.slots / max(run, 1e-3)
    if rate <= 0:
        return Estimate(None, "no job has completed yet to estimate from")
    return Estimate(round((ahead - free + 1) / rate, 3))
