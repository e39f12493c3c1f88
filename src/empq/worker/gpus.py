"""The GPUs this worker may use, from NVML (`nvidia-ml-py`), narrowed by `CUDA_VISIBLE_DEVICES`.

NVML lists every GPU in the machine, in PCI bus order; a process sees only those
`CUDA_VISIBLE_DEVICES` names. The variable holds indices or UUIDs (`GPU-8f1c...`,
a unique prefix is enough), comma-separated; CUDA stops at the first entry it cannot
use, an empty value hides every GPU, and unset shows all. Indices here are NVML's
(PCI bus order): set `CUDA_DEVICE_ORDER=PCI_BUS_ID` so CUDA numbers them the same.

One worker per GPU is the intended deployment: a job runs on one GPU, so the worker
reports the memory and model of the largest GPU it may use, and warns when it sees
more than one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Gpu:
    """One GPU as NVML reports it."""

    index: int
    uuid: str
    name: str
    memory_total: int  # bytes
    memory_used: int = 0  # bytes

    @property
    def memory_gb(self) -> float:
        """Total memory in GiB, to 0.1."""
        return round(self.memory_total / 2**30, 1)

    def as_info(self) -> dict[str, Any]:
        """For heartbeats' `system_info.gpus`."""
        return {
            "index": self.index,
            "uuid": self.uuid,
            "name": self.name,
            "memory_total_gb": self.memory_gb,
            "memory_used_gb": round(self.memory_used / 2**30, 1),
        }


def visible(gpus: list[Gpu], cuda_visible_devices: str | None) -> list[Gpu]:
    """The GPUs a process sees under `CUDA_VISIBLE_DEVICES` (None: unset), in its order."""
    if cuda_visible_devices is None:
        return list(gpus)
    chosen: list[Gpu] = []
    for raw in cuda_visible_devices.split(","):
        entry = raw.strip()
        gpu = _lookup(gpus, entry)
        if gpu is None or gpu in chosen:
            break  # CUDA ignores this entry and every one after it
        chosen.append(gpu)
    return chosen


def _lookup(gpus: list[Gpu], entry: str) -> Gpu | None:
    if entry.isdigit():
        return next((g for g in gpus if g.index == int(entry)), None)
    if entry.upper().startswith("GPU-"):
        matches = [g for g in gpus if g.uuid.lower().startswith(entry.lower())]
        return matches[0] if len(matches) == 1 else None
    return None  # negative numbers, MIG devices, garbage: CUDA stops here


def largest(gpus: list[Gpu]) -> tuple[float, str | None]:
    """The memory (GiB) and model of the largest GPU, or `(0.0, None)` with none."""
    if not gpus:
        return 0.0, None
    best = max(gpus, key=lambda g: g.memory_total)
    return best.memory_gb, best.name or None


def nvml_gpus() -> list[Gpu]:
    """Every GPU NVML reports; empty when `pynvml` or the NVIDIA driver is absent."""
    try:
        import pynvml  # type: ignore[import-untyped]
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        log.debug("no NVML: %s", exc)
        return []
    try:
        found = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                found.append(
                    Gpu(
                        index=index,
                        uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                        name=_text(pynvml.nvmlDeviceGetName(handle)),
                        memory_total=int(memory.total),
                        memory_used=int(memory.used),
                    )
                )
            except pynvml.NVMLError as exc:  # one broken GPU does not hide the others
                log.warning("NVML cannot read GPU %d: %s", index, exc)
        return found
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError as exc:
            log.debug("NVML shutdown: %s", exc)


def my_gpus() -> list[Gpu]:
    """The GPUs this process may use: NVML's, narrowed by `CUDA_VISIBLE_DEVICES`."""
    return visible(nvml_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"))


def _text(value: str | bytes) -> str:
    # Older nvidia-ml-py releases return bytes.
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
