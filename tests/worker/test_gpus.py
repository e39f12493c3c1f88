"""The GPUs a worker reports: NVML's list narrowed by CUDA_VISIBLE_DEVICES, largest first."""

from __future__ import annotations

from pathlib import Path

import pytest

from empq.config import WorkerSettings
from empq.worker import gpus
from empq.worker.capabilities import detect_hardware, load_capabilities, system_info
from empq.worker.gpus import Gpu, largest, visible

A100 = Gpu(0, "GPU-8f1c2d3e-0000-0000-0000-000000000000", "NVIDIA A100-SXM4-80GB", 80 * 2**30)
T4 = Gpu(1, "GPU-1a2b3c4d-0000-0000-0000-000000000000", "Tesla T4", 15 * 2**30)
L4 = Gpu(2, "GPU-1a99ffff-0000-0000-0000-000000000000", "NVIDIA L4", 24 * 2**30)
MACHINE = [A100, T4, L4]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, [A100, T4, L4]),  # unset: every GPU
        ("", []),  # empty: none
        ("1", [T4]),
        ("2,0", [L4, A100]),  # the order given is the order CUDA numbers them
        (" 1 , 2 ", [T4, L4]),
        ("GPU-8f1c", [A100]),  # a unique UUID prefix
        ("gpu-1a2b3c4d-0000-0000-0000-000000000000", [T4]),
        ("GPU-1a", []),  # ambiguous prefix: CUDA stops at it
        ("1,7,2", [T4]),  # CUDA stops at the first index that does not exist
        ("0,-1,1", [A100]),
        ("-1", []),
        ("1,1", [T4]),  # a repeated device ends the list
        ("MIG-GPU-8f1c/1/0", []),
        ("garbage", []),
    ],
)
def test_cuda_visible_devices_narrows_the_gpus(value: str | None, expected: list[Gpu]) -> None:
    assert visible(MACHINE, value) == expected


def test_the_largest_visible_gpu_is_reported() -> None:
    assert largest(visible(MACHINE, "1,2")) == (24.0, "NVIDIA L4")
    assert largest([]) == (0.0, None)


def test_gpu_info_for_heartbeats_is_in_gib() -> None:
    used = Gpu(3, "GPU-x", "NVIDIA L4", 24 * 2**30, memory_used=6 * 2**30)
    assert used.as_info() == {
        "index": 3,
        "uuid": "GPU-x",
        "name": "NVIDIA L4",
        "memory_total_gb": 24.0,
        "memory_used_gb": 6.0,
    }


def test_without_nvml_the_worker_reports_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    # This machine has pynvml (nvidia-ml-py) but no NVIDIA driver: NVML init fails.
    pytest.importorskip("pynvml")
    assert gpus.nvml_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert gpus.my_gpus() == []
    hardware = detect_hardware()
    assert hardware.gpu_memory_gb == 0
    assert hardware.gpu_model is None
    assert "gpus" not in system_info()


def test_a_capabilities_file_gpu_wins_over_detection(tmp_path: Path) -> None:
    path = tmp_path / "caps.yaml"
    path.write_text("hardware: {gpu_memory_gb: 24, gpu_model: NVIDIA L4}\n")
    caps = load_capabilities(WorkerSettings(worker_config=path))
    assert caps.hardware.gpu_memory_gb == 24
    assert caps.hardware.gpu_model == "NVIDIA L4"
