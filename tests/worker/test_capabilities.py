"""Capabilities from file, env, flags, connectors and detected hardware."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from empq.config import WorkerSettings
from empq.connectors.base import CapabilityAdditions
from empq.errors import ValidationError
from empq.worker.artifacts import derive_http_url
from empq.worker.capabilities import detect_hardware, load_capabilities, merge_connector_additions
from empq.worker.metrics import FinishedJob, WorkerMetrics


def test_hardware_is_detected_with_psutil() -> None:
    hw = detect_hardware()
    assert hw.cpu_cores >= 1
    assert hw.ram_gb > 0


def test_flags_beat_the_file_and_the_file_beats_detection(tmp_path: Path) -> None:
    path = tmp_path / "caps.yaml"
    path.write_text(
        "services: [comfyui]\n"
        "models: {comfyui: [sdxl]}\n"
        "hardware: {gpu_memory_gb: 24, gpu_model: RTX 4090}\n"
        "performance: {concurrent_jobs: 2}\n"
        "location: {region: eu-west, compliance: [gdpr]}\n"
    )
    caps = load_capabilities(
        WorkerSettings(worker_config=path), services=["simulation"], concurrent_jobs=4
    )
    assert caps.services == ["comfyui", "simulation"]
    assert caps.models == {"comfyui": ["sdxl"]}
    assert caps.hardware.gpu_memory_gb == 24
    assert caps.hardware.cpu_cores >= 1, "undeclared hardware is still detected"
    assert caps.performance.concurrent_jobs == 4
    assert caps.location.region == "eu-west"


def test_file_concurrency_holds_unless_env_or_flag_sets_it(tmp_path: Path) -> None:
    path = tmp_path / "caps.json"
    path.write_text(json.dumps({"performance": {"concurrent_jobs": 3}}))
    assert load_capabilities(WorkerSettings(worker_config=path)).performance.concurrent_jobs == 3
    env_set = WorkerSettings(worker_config=path, concurrent_jobs=5)
    assert load_capabilities(env_set).performance.concurrent_jobs == 5


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"servics": ["x"]}', "servics"),
        ('{"hardware": {"gpu_memory_gb": -1}}', "hardware.gpu_memory_gb"),
        ('{"performance": {"concurrent_jobs": 0}}', "performance.concurrent_jobs"),
        ("[1, 2]", "worker_config"),
        ("{not json", "worker_config"),
    ],
)
def test_bad_capabilities_file_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "caps.json"
    path.write_text(text)
    with pytest.raises(ValidationError) as info:
        load_capabilities(WorkerSettings(worker_config=path))
    assert field in [e["field"] for e in info.value.errors]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        load_capabilities(WorkerSettings(worker_config=tmp_path / "absent.yaml"))


def test_connectors_add_services_models_and_gpu() -> None:
    caps = load_capabilities(WorkerSettings(), services=["simulation"], detect=False)
    merged = merge_connector_additions(
        caps,
        [
            CapabilityAdditions(services=["comfyui"], models={"comfyui": ["a", "b"]}),
            CapabilityAdditions(
                services=["comfyui"],
                models={"comfyui": ["b", "c"]},
                gpu_memory_gb=12,
                gpu_model="X",
            ),
        ],
    )
    assert merged.services == ["simulation", "comfyui"]
    assert merged.models == {"comfyui": ["a", "b", "c"]}
    assert merged.hardware.gpu_memory_gb == 12
    assert merged.hardware.gpu_model == "X"


@pytest.mark.parametrize(
    ("ws", "http"),
    [
        ("ws://hub.local:3002", "http://hub.local:3001"),
        ("ws://hub.local:3001/ws", "http://hub.local:3001"),
        ("wss://hub.example.com/", "https://hub.example.com:3001"),
    ],
)
def test_hub_http_url_is_derived_from_the_websocket_url(ws: str, http: str) -> None:
    assert derive_http_url(ws) == http


def test_jobs_per_hour_counts_the_last_hour_only() -> None:
    metrics = WorkerMetrics()
    now = time.time()
    for ended in (now - 7200, now - 120, now - 1, now):
        metrics.finished(FinishedJob("j", "t", "completed", 0.1, ended))
    assert metrics.jobs_last_hour() == 3
    assert len(metrics.recent) == 4
