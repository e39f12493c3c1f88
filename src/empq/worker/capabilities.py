"""What this worker tells the hub it can run: file, flags, connectors and detected hardware.

Precedence, lowest first: detected hardware → the capabilities file
(`EMPQ_WORKER_CONFIG` / `--capabilities`, JSON or YAML) → `EMPQ_CONCURRENT_JOBS` and
flags (`--service`, `--concurrent-jobs`) → what the connectors add (their services
and models). Hardware the file states explicitly wins over detection.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil
import yaml
from pydantic import ValidationError as PydanticValidationError

from empq.config import WorkerSettings
from empq.connectors.base import CapabilityAdditions
from empq.errors import ValidationError
from empq.models import Hardware, WorkerCapabilities
from empq.worker.gpus import largest, my_gpus

log = logging.getLogger(__name__)


def detect_hardware(path: str = "/") -> Hardware:
    """CPU cores, RAM and free disk from psutil; the largest usable GPU from NVML.

    Usable means visible under `CUDA_VISIBLE_DEVICES` (see `empq.worker.gpus`).
    """
    gpus = my_gpus()
    if len(gpus) > 1:
        log.warning(
            "%d GPUs visible (%s); a job runs on one, so this worker reports the largest. "
            "Run one worker per GPU, each with CUDA_VISIBLE_DEVICES=<index>",
            len(gpus),
            ", ".join(f"{g.index}: {g.name} {g.memory_gb} GB" for g in gpus),
        )
    gpu_gb, gpu_model = largest(gpus)
    try:
        storage = psutil.disk_usage(path).free / 2**30
    except OSError:
        storage = 0.0
    return Hardware(
        cpu_cores=psutil.cpu_count(logical=True) or 0,
        ram_gb=round(psutil.virtual_memory().total / 2**30, 1),
        storage_gb=round(storage, 1),
        gpu_memory_gb=gpu_gb,
        gpu_model=gpu_model,
    )


def read_capabilities_file(path: Path) -> dict[str, Any]:
    """The raw capabilities mapping of a JSON or YAML file; errors name the file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValidationError(
            f"cannot read capabilities file {path}: {exc}",
            [{"field": "worker_config", "message": str(exc)}],
        ) from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValidationError(
            f"capabilities file {path} is not valid JSON/YAML: {exc}",
            [{"field": "worker_config", "message": str(exc)}],
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValidationError(
            f"capabilities file {path} must hold a mapping",
            [{"field": "worker_config", "message": "expected a mapping at the top level"}],
        )
    return data


def _validated(data: dict[str, Any], source: str) -> WorkerCapabilities:
    try:
        return WorkerCapabilities.model_validate(data)
    except PydanticValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        fields = ", ".join(e["field"] for e in errors)
        raise ValidationError(f"invalid capabilities in {source}: {fields}", errors) from exc


def load_capabilities(
    settings: WorkerSettings,
    services: list[str] | None = None,
    concurrent_jobs: int | None = None,
    *,
    detect: bool = True,
) -> WorkerCapabilities:
    """The worker's capabilities from file, env, flags and detected hardware (see module)."""
    data: dict[str, Any] = {}
    source = "settings"
    if settings.worker_config is not None:
        data = read_capabilities_file(settings.worker_config)
        source = str(settings.worker_config)
    hardware: dict[str, Any] = detect_hardware().model_dump() if detect else {}
    if isinstance(data.get("hardware"), dict):
        hardware.update(data["hardware"])
    if hardware:
        data["hardware"] = hardware
    if services:
        data["services"] = _unique([*data.get("services", []), *services])
    perf = dict(data.get("performance") or {})
    file_sets_slots = "concurrent_jobs" in perf
    if concurrent_jobs is not None:
        perf["concurrent_jobs"] = concurrent_jobs
    elif not file_sets_slots or "concurrent_jobs" in settings.model_fields_set:
        perf["concurrent_jobs"] = settings.concurrent_jobs
    data["performance"] = perf
    return _validated(data, source)


def merge_connector_additions(
    caps: WorkerCapabilities, additions: Iterable[CapabilityAdditions]
) -> WorkerCapabilities:
    """`caps` plus what the connectors contribute (services, models, GPU they see)."""
    merged = caps.model_copy(deep=True)
    for add in additions:
        merged.services = _unique([*merged.services, *add.services])
        for service, names in add.models.items():
            merged.models[service] = _unique([*merged.models.get(service, []), *names])
        if add.gpu_memory_gb and add.gpu_memory_gb > merged.hardware.gpu_memory_gb:
            merged.hardware.gpu_memory_gb = add.gpu_memory_gb
            merged.hardware.gpu_model = add.gpu_model or merged.hardware.gpu_model
    return merged


def system_info() -> dict[str, Any]:
    """Load figures for heartbeats, with each usable GPU's memory in use when NVML is there."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    info: dict[str, Any] = {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_percent": psutil.virtual_memory().percent,
        "load_avg": [round(x, 2) for x in load],
        "pid": os.getpid(),
    }
    gpus = my_gpus()
    if gpus:
        info["gpus"] = [g.as_info() for g in gpus]
    return info


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
