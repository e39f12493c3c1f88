"""Job records to and from their Redis hash fields."""

from __future__ import annotations

import json
from typing import Any

from empq import telemetry
from empq.errors import ValidationError
from empq.matching import JobSpec
from empq.models import Isolation, Job, JobSubmission, Requirements, utc_from_ms
from empq.protocol import dumps, now_ms
from empq.strict_json import non_finite_path

# Hash fields holding JSON documents.
_JSON_FIELDS = ("payload", "requirements", "result", "error_details")
_INT_FIELDS = (
    "priority",
    "max_retries",
    "workflow_priority",
    "workflow_datetime",
    "step_number",
    "attempts",
)
_TIME_FIELDS = ("created_at", "assigned_at", "started_at", "completed_at", "retry_at")


def idempotency_field(customer_id: str | None, key: str | None) -> str | None:
    """Where an idempotency key is kept: per customer, so one customer's key can never
    answer with another customer's job."""
    if key is None or customer_id is None:
        return key
    return f"{customer_id}\x1f{key}"


def submission_fields(sub: JobSubmission) -> dict[str, str | int]:
    """The hash fields a submission writes (None values are left out)."""
    payload = dumps(sub.payload)
    # A REST body's parser reads NaN, Infinity and 1e999 into the free-form payload;
    # the serializer writes them back as those tokens, which are not JSON. The text is
    # at hand, so the (rare) search for where they are costs nothing otherwise.
    if ("NaN" in payload or "Infinity" in payload) and (
        where := non_finite_path(sub.payload)
    ) is not None:
        field = f"payload.{where}"
        raise ValidationError(
            f"invalid submission: bad fields {field}",
            [{"field": field, "message": "NaN and Infinity are not JSON numbers"}],
        )
    fields: dict[str, str | int] = {
        "type": sub.type,
        "priority": sub.priority,
        "payload": payload,
        "requirements": requirements_json(sub.requirements),
        "max_retries": sub.max_retries,
        "timeout_ms": int(sub.requirements.timeout_minutes * 60_000),
    }
    for name in ("customer_id", "workflow_id", "step_number", "webhook_url", "idempotency_key"):
        value = getattr(sub, name)
        if value is not None:
            fields[name] = value
    traceparent = telemetry.submit_traceparent(
        sub.traceparent, {"empq.job.type": sub.type, "empq.job.priority": sub.priority}
    )
    if traceparent is not None:
        fields["traceparent"] = traceparent
    return fields


#: Requirements JSON texts remembered by `requirements_json` (a bound, not a target).
_REQUIREMENTS_MAX = 10_000
_REQUIREMENTS: dict[tuple[Any, ...], str] = {}


def requirements_json(req: Requirements) -> str:
    """`req` as a job's hash holds it: the fields that differ from their defaults.

    Remembered by the fields' values: a queue's jobs mostly repeat a few requirements,
    and serializing them cold costs several times a lookup.
    """
    hw = req.hardware
    key = (
        req.service_type,
        req.component,
        req.workflow,
        tuple(req.models),
        hw.gpu_memory_gb,
        hw.cpu_cores,
        hw.ram_gb,
        hw.storage_gb,
        req.customer_isolation,
        req.quality_level,
        req.timeout_minutes,
        req.geographic_region,
        tuple(req.compliance),
        req.cost_tier,
    )
    text = _REQUIREMENTS.get(key)
    if text is None:
        text = req.model_dump_json(exclude_defaults=True)
        if len(_REQUIREMENTS) >= _REQUIREMENTS_MAX:
            _REQUIREMENTS.clear()
        _REQUIREMENTS[key] = text
    return text


def spec_of(sub: JobSubmission) -> JobSpec:
    """The matching spec of a submission."""
    return JobSpec.of(sub.type, sub.customer_id, sub.requirements)


def decode_hash(raw: dict[bytes, bytes] | list[bytes]) -> dict[str, str]:
    """HGETALL's reply (a dict, or a flat list from a script) as a str dict."""
    if isinstance(raw, list):
        it = iter(raw)
        return {k.decode(): v.decode() for k, v in zip(it, it, strict=True)}
    return {k.decode(): v.decode() for k, v in raw.items()}


def job_from_hash(job_id: str, h: dict[str, str]) -> Job:
    """A `Job` from its hash fields."""
    data: dict[str, Any] = {"id": job_id}
    for key, value in h.items():
        if key in _JSON_FIELDS:
            data[key] = json.loads(value)
        elif key in _INT_FIELDS:
            data[key] = int(value)
        elif key in _TIME_FIELDS:
            data[key] = utc_from_ms(float(value))
        elif key == "progress":
            data[key] = float(value)
        elif key in (
            "type",
            "status",
            "customer_id",
            "workflow_id",
            "webhook_url",
            "idempotency_key",
            "traceparent",
            "message",
            "worker_id",
            "error",
        ):
            data[key] = value
    data.setdefault("requirements", Requirements())
    return Job.model_validate(data)


def isolation_of(h: dict[str, str]) -> Isolation:
    """The job's `customer_isolation` from its hash fields."""
    raw = h.get("requirements")
    if not raw or "customer_isolation" not in raw:
        return Isolation.NONE
    return Isolation(json.loads(raw).get("customer_isolation", "none"))


def gpu_memory_of(h: dict[str, str]) -> float | None:
    """The job's `requirements.hardware.gpu_memory_gb` from its hash fields."""
    raw = h.get("requirements")
    if not raw or "gpu_memory_gb" not in raw:
        return None
    value = json.loads(raw).get("hardware", {}).get("gpu_memory_gb")
    return float(value) if value is not None else None


def _int_or_none(value: str | None) -> int | None:
    return None if value is None else int(value)


def assigned_message(
    job_id: str,
    h: dict[str, str],
    *,
    worker_id: str,
    claim_token: str,
    claim_timeout: float,
    claim_remaining: int,
) -> str:
    """The `job_assigned` text for a claimed job, straight from its hash fields.

    `payload` and `requirements` are spliced in as the JSON text the hash holds (the
    submission's, validated then), so a large payload is copied, never re-parsed.
    `requirements` lists the fields the submission set; the rest have their defaults.
    """
    head = dumps(
        {
            "type": "job_assigned",
            "timestamp": now_ms(),
            "job_id": job_id,
            "worker_id": worker_id,
            "job_type": h.get("type", ""),
            "priority": int(h.get("priority", 50)),
            "claim_token": claim_token,
            "claim_timeout": claim_timeout,
            "customer_id": h.get("customer_id"),
            "workflow_id": h.get("workflow_id"),
            "step_number": _int_or_none(h.get("step_number")),
            "attempts": int(h.get("attempts", 0)),
            "max_retries": int(h.get("max_retries", 3)),
            # How many more job_assigned answer the same claim_job (0: the last).
            "claim_remaining": claim_remaining,
            "traceparent": h.get("traceparent"),
        }
    )
    payload = h.get("payload") or "{}"
    requirements = h.get("requirements") or "{}"
    return f'{head[:-1]},"payload":{payload},"requirements":{requirements}}}'
