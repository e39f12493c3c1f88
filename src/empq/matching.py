"""Which worker may run which job: the hard rules of CONTRACT §2, and a soft score.

Pure functions, no I/O. The broker's claim, the hub's dispatch and the explain
endpoint all call these, so there is one statement of the rules.

A job's matching-relevant fields form a `JobSpec`; jobs with equal specs are
interchangeable for matching, and the broker queues them together (one queue per
spec *signature*). A worker's `WorkerState` carries what changes as it runs jobs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from empq.models import Isolation, Requirements, WorkerCapabilities


@dataclass(frozen=True, slots=True)
class JobSpec:
    """The fields of a job that the hard rules read."""

    type: str
    customer_id: str | None = None
    service_type: str | None = None
    component: str | None = None
    workflow: str | None = None
    models: tuple[str, ...] = ()
    gpu_memory_gb: float | None = None
    cpu_cores: float | None = None
    ram_gb: float | None = None
    storage_gb: float | None = None
    isolation: Isolation = Isolation.NONE
    region: str | None = None
    compliance: tuple[str, ...] = ()
    # Computed once: dispatch reads the signature for every idle worker it considers.
    _json: str = field(init=False, repr=False, compare=False)
    _signature: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        d = {
            "type": self.type,
            "customer_id": self.customer_id,
            "service_type": self.service_type,
            "component": self.component,
            "workflow": self.workflow,
            "models": list(self.models),
            "gpu_memory_gb": self.gpu_memory_gb,
            "cpu_cores": self.cpu_cores,
            "ram_gb": self.ram_gb,
            "storage_gb": self.storage_gb,
            "isolation": self.isolation.value,
            "region": self.region,
            "compliance": list(self.compliance),
        }
        canonical = json.dumps(d, sort_keys=True, separators=(",", ":"))
        object.__setattr__(self, "_json", canonical)
        digest = hashlib.blake2b(canonical.encode(), digest_size=10).hexdigest()
        object.__setattr__(self, "_signature", digest)

    @classmethod
    def of(cls, job_type: str, customer_id: str | None, req: Requirements) -> JobSpec:
        """The spec of a job with this type, customer and requirements.

        Remembered by those fields (up to `_SPECS_MAX` of them): a queue's jobs mostly
        repeat a few specs, and building one (canonical JSON, hash) is a sizeable part
        of a submission's cost.
        """
        hw = req.hardware
        # The spec's own fields, in their order: the key, and the spec's arguments.
        key = (
            job_type,
            customer_id,
            req.service_type,
            req.component,
            req.workflow,
            tuple(sorted(set(req.models))),
            hw.gpu_memory_gb,
            hw.cpu_cores,
            hw.ram_gb,
            hw.storage_gb,
            req.customer_isolation,
            req.geographic_region,
            tuple(sorted(set(req.compliance))),
        )
        spec = _SPECS.get(key)
        if spec is None:
            spec = cls(*key)
            if len(_SPECS) >= _SPECS_MAX:
                _SPECS.clear()
            _SPECS[key] = spec
        return spec

    def to_json(self) -> str:
        """Canonical JSON: equal specs give equal strings."""
        return self._json

    @classmethod
    def from_json(cls, raw: str | bytes) -> JobSpec:
        """The spec `to_json` wrote."""
        d = json.loads(raw)
        return cls(
            type=d["type"],
            customer_id=d["customer_id"],
            service_type=d["service_type"],
            component=d["component"],
            workflow=d["workflow"],
            models=tuple(d["models"]),
            gpu_memory_gb=d["gpu_memory_gb"],
            cpu_cores=d["cpu_cores"],
            ram_gb=d["ram_gb"],
            storage_gb=d["storage_gb"],
            isolation=Isolation(d["isolation"]),
            region=d["region"],
            compliance=tuple(d["compliance"]),
        )

    @property
    def signature(self) -> str:
        """A short stable id for this spec: the name of its queue."""
        return self._signature


#: `JobSpec.of`'s memory: its arguments' fields -> the spec.
_SPECS: dict[tuple[object, ...], JobSpec] = {}
_SPECS_MAX = 10_000


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job a worker holds, as far as the isolation and VRAM rules care."""

    customer_id: str | None
    isolation: Isolation = Isolation.NONE
    #: The VRAM it reserves (`requirements.hardware.gpu_memory_gb`) from claim to end.
    gpu_memory_gb: float | None = None
    #: Which of the worker's GPUs holds that reservation.
    gpu: int = 0


@dataclass(frozen=True, slots=True)
class WorkerState:
    """What a worker is running now."""

    running: tuple[RunningJob, ...] = ()
    draining: bool = False

    def with_job(self, job: RunningJob) -> WorkerState:
        """The state after taking one more job."""
        return WorkerState(running=(*self.running, job), draining=self.draining)

    def reserved_gb(self, gpus: int) -> list[float]:
        """VRAM reserved on each of `gpus` GPUs by the jobs it runs."""
        reserved = [0.0] * max(gpus, 1)
        for r in self.running:
            if r.gpu_memory_gb:
                reserved[min(r.gpu, len(reserved) - 1)] += r.gpu_memory_gb
        return reserved

    def fit_gpu(self, caps: WorkerCapabilities, need: float | None) -> int | None:
        """The GPU a job needing `need` GB would reserve on (None: none has room).

        Best fit: the GPU with the least room that still fits, so a large job finds a
        GPU with room later. Without a VRAM budget or a need, GPU 0 and no check.
        """
        budget = caps.hardware.gpu_memory_gb
        if not need or budget <= 0:
            return 0
        reserved = self.reserved_gb(caps.hardware.gpu_count)
        room = [(budget - used, i) for i, used in enumerate(reserved) if budget - used >= need]
        return min(room)[1] if room else None

    def place(self, caps: WorkerCapabilities, job: RunningJob) -> RunningJob:
        """`job` with the GPU its reservation goes on."""
        gpu = self.fit_gpu(caps, job.gpu_memory_gb)
        return job if gpu in (None, job.gpu) else replace(job, gpu=gpu)


@dataclass(slots=True)
class StaticVerdicts:
    """Cache of static (state-independent) reasons per spec signature, for one worker."""

    caps: WorkerCapabilities
    verdicts: dict[str, list[str]] = field(default_factory=dict)

    def reasons(self, spec: JobSpec) -> list[str]:
        sig = spec.signature
        cached = self.verdicts.get(sig)
        if cached is None:
            cached = static_reasons(self.caps, spec)
            self.verdicts[sig] = cached
        return cached


def _fmt(values: Iterable[str]) -> str:
    return "[" + ", ".join(sorted(values)) + "]"


def static_reasons(caps: WorkerCapabilities, spec: JobSpec) -> list[str]:
    """Why this worker can never run this job, whatever it is doing (empty: it can)."""
    reasons: list[str] = []
    if spec.service_type is not None and spec.service_type not in caps.services:
        reasons.append(
            f"service_type '{spec.service_type}' not among worker services {_fmt(caps.services)}"
        )
    if (
        spec.component is not None
        and caps.components != "all"
        and spec.component not in caps.components
    ):
        reasons.append(f"component '{spec.component}' not supported")
    if (
        spec.workflow is not None
        and caps.workflows != "all"
        and spec.workflow not in caps.workflows
    ):
        reasons.append(f"workflow '{spec.workflow}' not supported")
    if spec.models:
        have = set(caps.models.get(spec.service_type or "", []))
        missing = [m for m in spec.models if m not in have]
        if missing:
            reasons.append(
                f"missing models {_fmt(missing)} for service '{spec.service_type or ''}'"
            )
    hw = caps.hardware
    for name, need, have_v in (
        ("gpu_memory_gb", spec.gpu_memory_gb, hw.gpu_memory_gb),
        ("cpu_cores", spec.cpu_cores, hw.cpu_cores),
        ("ram_gb", spec.ram_gb, hw.ram_gb),
        ("storage_gb", spec.storage_gb, hw.storage_gb),
    ):
        if need is not None and have_v < need:
            reasons.append(f"hardware.{name}: needs {need:g}, worker has {have_v:g}")
    access = caps.customer_access
    if access.isolation.rank < spec.isolation.rank:
        reasons.append(
            f"customer_isolation '{spec.isolation.value}' above worker isolation "
            f"'{access.isolation.value}'"
        )
    if access.allowed_customers is not None:
        if spec.customer_id is None:
            reasons.append("job has no customer_id and the worker serves only allowed_customers")
        elif spec.customer_id not in access.allowed_customers:
            reasons.append(f"customer '{spec.customer_id}' not in worker allowed_customers")
    loc = caps.location
    if spec.region is not None and spec.region != loc.region:
        reasons.append(
            f"geographic_region '{spec.region}' differs from worker region '{loc.region or ''}'"
        )
    missing_c = [c for c in spec.compliance if c not in loc.compliance]
    if missing_c:
        reasons.append(f"missing compliance {_fmt(missing_c)}")
    anti = caps.job_anti_affinity
    if spec.type in anti.avoided_types:
        reasons.append(f"job type '{spec.type}' is in worker avoided_types")
    if spec.customer_id is not None and spec.customer_id in anti.avoided_customers:
        reasons.append(f"customer '{spec.customer_id}' is in worker avoided_customers")
    return reasons


def dynamic_reasons(caps: WorkerCapabilities, state: WorkerState, spec: JobSpec) -> list[str]:
    """Why this worker cannot take this job *now*, given what it is running."""
    reasons: list[str] = []
    if state.draining:
        reasons.append("worker is draining")
    slots = caps.performance.concurrent_jobs
    if len(state.running) >= slots:
        reasons.append(f"no free slot ({len(state.running)}/{slots} jobs running)")
    others = {r.customer_id for r in state.running if r.customer_id != spec.customer_id}
    if spec.isolation is Isolation.STRICT and others:
        reasons.append("strict isolation: worker is running jobs of other customers")
    strict_owners = {
        r.customer_id
        for r in state.running
        if r.isolation is Isolation.STRICT and r.customer_id != spec.customer_id
    }
    if strict_owners:
        reasons.append("worker is running another customer's strict-isolation job")
    limit = caps.customer_access.max_concurrent_customers
    if limit is not None:
        current = {r.customer_id for r in state.running}
        if spec.customer_id not in current and len(current) >= limit:
            reasons.append(f"max_concurrent_customers {limit} reached")
    if state.fit_gpu(caps, spec.gpu_memory_gb) is None:
        free = caps.hardware.gpu_memory_gb - min(state.reserved_gb(caps.hardware.gpu_count))
        reasons.append(
            f"gpu memory: needs {spec.gpu_memory_gb:g} GB, {free:g} GB unreserved "
            f"of {caps.hardware.gpu_memory_gb:g} GB"
        )
    return reasons


def warm_first(
    members: list[tuple[str, str]],
    specs: Mapping[str, JobSpec],
    models_loaded: Mapping[str, Sequence[str]] | None,
    window_ms: int,
) -> bool:
    """Move to the front the best job with its models warm that may go first; True if moved.

    `members` are (order key, signature) best first. A warm job may go ahead of older
    cold jobs only when they share its effective priority (the key's first 3 digits)
    and were queued at most `window_ms` before it (the next 13 digits); priority is never
    crossed, and with a window of 0 nothing moves (strict order).
    """
    if window_ms <= 0 or not models_loaded or len(members) < 2:
        return False
    head = members[0][0]
    if is_warm(specs[members[0][1]], models_loaded):
        return False
    band, since = head[:3], int(head[3:16])
    for i in range(1, len(members)):
        member, sig = members[i]
        if member[:3] != band or int(member[3:16]) - since > window_ms:
            return False
        if is_warm(specs[sig], models_loaded):
            members.insert(0, members.pop(i))
            return True
    return False


def vram_limited(caps: WorkerCapabilities, spec: JobSpec) -> bool:
    """Whether taking a job of `spec` reserves part of this worker's VRAM budget."""
    return bool(spec.gpu_memory_gb) and caps.hardware.gpu_memory_gb > 0


def is_warm(spec: JobSpec, models_loaded: Mapping[str, Sequence[str]] | None) -> bool:
    """Whether every model the job names is warm (loaded) on the worker."""
    if not spec.models or not models_loaded:
        return False
    loaded = models_loaded.get(spec.service_type or "", ())
    return all(m in loaded for m in spec.models)


def reasons(caps: WorkerCapabilities, spec: JobSpec, state: WorkerState | None = None) -> list[str]:
    """Every reason this worker cannot run this job now; empty means it can."""
    return static_reasons(caps, spec) + dynamic_reasons(caps, state or WorkerState(), spec)


def can_run(caps: WorkerCapabilities, spec: JobSpec, state: WorkerState | None = None) -> bool:
    """Whether this worker may run this job now."""
    return not reasons(caps, spec, state)


#: What having every model of the job warm adds to a worker's score: more than every
#: other preference together, since a model load costs more than any of them saves.
WARM_SCORE = 100.0


def score(
    caps: WorkerCapabilities,
    spec: JobSpec,
    cost_tier: str | None = None,
    models_loaded: Mapping[str, Sequence[str]] | None = None,
) -> float:
    """A soft preference of this worker for this job (higher is better).

    Used only to pick which idle worker is offered a job first; never to reorder
    jobs. Prefers a worker with the job's models warm (`models_loaded`), then
    affinity, then the least over-provisioned worker (so a 24 GB job does not tie
    up an 80 GB card when a 24 GB card is idle), then matching cost tier.
    """
    s = WARM_SCORE if is_warm(spec, models_loaded) else 0.0
    if spec.type in caps.job_affinity.preferred_types:
        s += 10
    if spec.customer_id is not None and spec.customer_id in caps.job_affinity.preferred_customers:
        s += 10
    if spec.gpu_memory_gb is not None and caps.hardware.gpu_memory_gb > 0:
        s -= (caps.hardware.gpu_memory_gb - spec.gpu_memory_gb) / max(
            caps.hardware.gpu_memory_gb, 1
        )
    if cost_tier is not None and caps.cost.tier == cost_tier:
        s += 1
    return s


def eviction_cost(
    spec: JobSpec, mine: Mapping[str, Sequence[str]], holders: Mapping[str, int]
) -> int:
    """How many warm models only this worker holds, for a job that is cold on it.

    Loading the job's models may evict one of them; among cold workers, the one whose
    warm models are also warm elsewhere loses the fleet the least (`holders`: model ->
    how many workers hold it warm for the job's service).
    """
    if not spec.models:
        return 0
    return sum(1 for m in mine.get(spec.service_type or "", ()) if holders.get(m, 0) <= 1)


def rank_workers(candidates: Sequence[tuple[str, WorkerCapabilities]], spec: JobSpec) -> list[str]:
    """Worker ids best score first (ties by id, for stable output)."""
    return [wid for wid, _ in sorted(candidates, key=lambda c: (-score(c[1], spec), c[0]))]
