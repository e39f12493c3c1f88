"""Position and ETA of queued jobs, and the dry-run match (`POST /api/match`).

The numbers come from the broker (what is queued ahead) and the registry (which
connected workers can run the job, their free slots and recent run times); the
arithmetic is `empq.placement.estimate`.
"""

from __future__ import annotations

from statistics import fmean
from typing import TYPE_CHECKING, Any

from empq.hub.explain import match_workers, warnings
from empq.matching import JobSpec, StaticVerdicts
from empq.models import JobSubmission, WorkerInfo
from empq.placement import Capacity, Estimate, estimate
from empq.status import WorkerStatus

if TYPE_CHECKING:
    from empq.hub.registry import Registry
    from empq.hub.runtime import Hub


class Placement:
    """The capable workers of a spec, from the registry, with each one's static verdicts
    cached (a submission's ETA reads them: no rule is evaluated twice for one worker)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        #: Workers on other hubs: worker id -> verdicts for its current capabilities.
        self._remote: dict[str, StaticVerdicts] = {}

    def _verdicts(self, info: WorkerInfo) -> StaticVerdicts:
        lw = self.registry.local.get(info.worker_id)
        if lw is not None:
            return lw.verdicts
        cached = self._remote.get(info.worker_id)
        if cached is None or cached.caps is not info.capabilities:
            if len(self._remote) > 10_000:
                self._remote.clear()
            cached = self._remote[info.worker_id] = StaticVerdicts(info.capabilities)
        return cached

    def capable(self, spec: JobSpec, enough_free: int | None = None) -> list[WorkerInfo]:
        """Connected, serving workers that may ever run a job of `spec`, as of now.

        With `enough_free`, stops early once the ones found have more free slots than
        that (the job then starts at once, whatever the others).
        """
        found: list[WorkerInfo] = []
        free = 0
        local = self.registry.local
        for wid, known in self.registry.known.items():
            lw = local.get(wid)
            info = lw.sync_info() if lw is not None else known
            if not info.connected or info.status in (WorkerStatus.OFFLINE, WorkerStatus.DRAINING):
                continue
            if self._verdicts(info).reasons(spec):
                continue
            found.append(info)
            if enough_free is not None:
                slots = info.capabilities.performance.concurrent_jobs
                free += max(slots - len(info.current_jobs), 0)
                if free > enough_free:
                    break
        return found


def _capacities(spec: JobSpec, workers: list[WorkerInfo]) -> tuple[list[Capacity], float | None]:
    """Each capable worker's slots and run time for `spec`, and the fleet's fallback."""
    sig = spec.signature
    of_sig = [w.run_seconds[sig] for w in workers if sig in w.run_seconds]
    overall = [w.run_seconds["*"] for w in workers if "*" in w.run_seconds]
    fallback = fmean(of_sig) if of_sig else (fmean(overall) if overall else None)
    caps = [
        Capacity(
            slots=w.capabilities.performance.concurrent_jobs,
            free=max(w.capabilities.performance.concurrent_jobs - len(w.current_jobs), 0),
            run_seconds=w.run_seconds.get(sig, w.run_seconds.get("*")),
        )
        for w in workers
    ]
    return caps, fallback


async def eta(hub: Hub, spec: JobSpec, bound: str, position: int | None = None) -> Estimate:
    """The ETA of a job of `spec` whose place in claim order is just below `bound`.

    `position` (its place among all queued jobs), when known, saves the count of the
    jobs ahead when free capable slots outnumber every queued job before it.
    """
    ahead_at_most = None if position is None else position - 1
    workers = hub.placement.capable(spec, ahead_at_most)
    if not workers:
        return Estimate(None, "no connected worker can run this job")
    caps, fallback = _capacities(spec, workers)
    if ahead_at_most is not None and ahead_at_most < sum(c.free for c in caps):
        return Estimate(0.0)
    ahead = await hub.broker.ahead_for([w.capabilities for w in workers], bound)
    return estimate(ahead, caps, fallback)


def eta_fields(est: Estimate) -> dict[str, Any]:
    """`eta_seconds`, and `eta_reason` when there is no estimate."""
    out: dict[str, Any] = {"eta_seconds": est.seconds}
    if est.reason is not None:
        out["eta_reason"] = est.reason
    return out


async def dry_run(hub: Hub, sub: JobSubmission) -> dict[str, Any]:
    """`POST /api/match`: what submitting `sub` now would give; nothing is stored."""
    spec = JobSpec.of(sub.type, sub.customer_id, sub.requirements)
    workers = await hub.registry.all()
    matching, rejected = match_workers(spec, sub.requirements.cost_tier, workers)
    bound = await hub.broker.order_bound(sub)
    position = await hub.broker.position_below(bound)
    return {
        "position": position,
        **eta_fields(await eta(hub, spec, bound, position)),
        "matching_workers": matching,
        "rejected_workers": rejected,
        "warnings": warnings(spec, workers),
    }
