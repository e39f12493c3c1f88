"""Which models a ComfyUI workflow loads: read from its loader nodes' inputs.

A workflow that ran leaves these models warm in ComfyUI's memory, so the connector
reports them as `models_loaded` (the hub then routes jobs needing them to this worker).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Input names that name a model file, on ComfyUI's loader nodes
#: (CheckpointLoaderSimple.ckpt_name, LoraLoader.lora_name, VAELoader.vae_name, ...).
MODEL_INPUTS = (
    "ckpt_name",
    "unet_name",
    "lora_name",
    "vae_name",
    "clip_name",
    "clip_name1",
    "clip_name2",
    "control_net_name",
    "upscale_model_name",
    "style_model_name",
)


def workflow_models(nodes: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """The model names a workflow's loader nodes name, checkpoints first, each once.

    `nodes` are (class_type, inputs) pairs. A checkpoint is what costs the most to load,
    so it leads the list (the most recent first, as `models_loaded` wants).
    """
    found: dict[str, int] = {}
    for class_type, inputs in nodes:
        if "Loader" not in class_type:
            continue
        for rank, name in enumerate(MODEL_INPUTS):
            value = inputs.get(name)
            if isinstance(value, str) and value:
                found.setdefault(value, rank)
    return sorted(found, key=lambda n: found[n])
