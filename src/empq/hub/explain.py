"""Why a job is (not) running: `GET /api/jobs/{id}/explain` and submit-time warnings.

Built on `matching`'s reasons, so the explanation is the rule the broker applies.
"""

from __future__ import annotations

from typing import Any

from empq.matching import JobSpec, is_warm, score, static_reasons
from empq.models import Job, WorkerInfo
from empq.status import JobStatus, WorkerStatus


def service_down_reasons(worker: WorkerInfo, service: str | None) -> list[str]:
    """`comfyui: unreachable since ...` for each of the worker's connectors serving
    `service` that its last heartbeat reported down (the worker claims none of
    their jobs meanwhile)."""
    if not service or not isinstance(worker.connector_status, dict):
        return []
    reasons = []
    for name, entry in worker.connector_status.items():
        if not isinstance(entry, dict) or entry.get("state") != "unreachable":
            continue
        services = entry.get("services")
        if isinstance(services, list) and service not in services:
            continue
        reasons.append(str(entry.get("summary") or f"{name}: unreachable"))
    return reasons


def match_workers(
    spec: JobSpec, cost_tier: str | None, workers: list[WorkerInfo]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The workers that can run a job of `spec` (best first) and why the others cannot.

    Each match says whether the job's models are `warm` there (it is then preferred)
    and how much of its VRAM budget is not reserved by the jobs it runs.
    """
    matching: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for w in workers:
        why = static_reasons(w.capabilities, spec) + service_down_reasons(w, spec.service_type)
        if not w.connected or w.status == WorkerStatus.OFFLINE:
            why = [*why, "worker is offline"]
        elif w.status == WorkerStatus.DRAINING:
            why = [*why, "worker is draining"]
        if why:
            rejected.append({"worker_id": w.worker_id, "reasons": why})
            continue
        caps = w.capabilities
        entry: dict[str, Any] = {
            "worker_id": w.worker_id,
            "status": w.status.value,
            "score": score(caps, spec, cost_tier, w.models_loaded),
            "current_jobs": len(w.current_jobs),
            "free_slots": max(caps.performance.concurrent_jobs - len(w.current_jobs), 0),
            "warm": is_warm(spec, w.models_loaded),
        }
        if spec.models:
            loaded = w.models_loaded.get(spec.service_type or "", [])
            entry["warm_models"] = [m for m in spec.models if m in loaded]
        matching.append(entry)
    matching.sort(key=lambda m: (-m["score"], m["worker_id"]))
    return matching, rejected


def explain(job: Job, workers: list[WorkerInfo]) -> dict[str, Any]:
    """The explain reply of CONTRACT §3 for one job against the known workers."""
    spec = JobSpec.of(job.type, job.customer_id, job.requirements)
    matching, rejected = match_workers(spec, job.requirements.cost_tier, workers)
    return {
        "job_id": job.id,
        "status": job.status.value,
        "position": job.position,
        "matching_workers": matching,
        "rejected_workers": rejected,
        "summary": _summary(job, matching, rejected),
    }


def _summary(job: Job, matching: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> str:
    if job.status != JobStatus.QUEUED:
        who = f" on worker {job.worker_id}" if job.worker_id else ""
        return f"job is {job.status.value}{who}"
    if not matching and not rejected:
        return "no workers are registered; the job waits until one that can run it connects"
    if not matching:
        return (
            f"no connected worker can run this job ({len(rejected)} rejected); "
            "see rejected_workers for the reasons"
        )
    idle = [m for m in matching if m["status"] == "idle"]
    pos = f" at position {job.position}" if job.position else ""
    if idle:
        return f"queued{pos}; {len(idle)} idle matching worker(s) should claim it shortly"
    return f"queued{pos}; {len(matching)} matching worker(s), all busy"


def warnings(spec: JobSpec, workers: list[WorkerInfo]) -> list[str]:
    """Submit-time warnings: none when some registered worker could ever run the job."""
    if not workers:
        return [
            "no workers are registered; the job stays queued until one that can run it connects"
        ]
    verdicts = [(w, static_reasons(w.capabilities, spec)) for w in workers]
    if any(not why for _, why in verdicts):
        return []
    w, why = verdicts[0]
    return [f"no registered worker can run this job (e.g. worker {w.worker_id}: {'; '.join(why)})"]
