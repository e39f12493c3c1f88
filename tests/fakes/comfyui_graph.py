"""The fake ComfyUI's node classes: validation, execution order, `/object_info`."""

from __future__ import annotations

from typing import Any

# class_type -> (required inputs {name: (type, min, max)}, is output node)
NODES: dict[str, tuple[dict[str, tuple[str, float | None, float | None]], bool]] = {
    "EmptyImage": ({"width": ("INT", 1, 8192), "height": ("INT", 1, 8192)}, False),
    "Sampler": ({"image": ("IMAGE", None, None), "steps": ("INT", 1, 10000)}, False),
    "SlowNode": ({"image": ("IMAGE", None, None), "seconds": ("FLOAT", 0, 60)}, False),
    "FailNode": ({"image": ("IMAGE", None, None)}, False),
    "SaveImage": (
        {"images": ("IMAGE", None, None), "filename_prefix": ("STRING", None, None)},
        True,
    ),
    "PreviewImage": ({"images": ("IMAGE", None, None)}, True),
    "CheckpointLoaderSimple": ({"ckpt_name": ("STRING", None, None)}, False),
    "LoraLoader": ({"lora_name": ("STRING", None, None)}, False),
    "VAELoader": ({"vae_name": ("STRING", None, None)}, False),
}


def error_entry(etype: str, message: str, details: str = "") -> dict[str, Any]:
    """One error object of ComfyUI's replies."""
    return {"type": etype, "message": message, "details": details, "extra_info": {}}


def validate_tree(graph: dict[str, Any], nid: str) -> dict[str, list[dict[str, Any]]]:
    """Per node, the validation errors of `nid` and every node it links to.

    As ComfyUI's `validate_prompt` keys its `node_errors`: by the node at fault (an
    `EmptyImage` missing its `height`), not by the output that needs it.
    """
    found: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()

    def visit(at: str) -> None:
        if at in seen:
            return
        seen.add(at)
        own, links = _node_errors(graph, at)
        if own:
            found[at] = own
        for link in links:
            visit(link)

    visit(nid)
    return found


def _node_errors(graph: dict[str, Any], nid: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The node's own validation errors, as ComfyUI words them, and the nodes it links to."""
    links: list[str] = []
    node = graph[nid]
    spec, _ = NODES[node["class_type"]]
    inputs = node.get("inputs") or {}
    errors: list[dict[str, Any]] = []
    for name, (itype, lo, hi) in spec.items():
        if name not in inputs:
            errors.append(error_entry("required_input_missing", "Required input is missing", name))
            continue
        value = inputs[name]
        if isinstance(value, list):
            if len(value) != 2 or str(value[0]) not in graph:
                errors.append(error_entry("exception_during_inner_validation", "Bad link", name))
            else:
                links.append(str(value[0]))
        elif itype in ("INT", "FLOAT"):
            if not isinstance(value, int | float):
                errors.append(error_entry("invalid_input_type", "Failed to convert", name))
            elif lo is not None and value < lo:
                errors.append(error_entry("value_smaller_than_min", f"Value {value} < min", name))
            elif hi is not None and value > hi:
                errors.append(error_entry("value_bigger_than_max", f"Value {value} > max", name))
        elif itype == "IMAGE":
            errors.append(error_entry("invalid_input_type", "IMAGE must be a link", name))
    return errors, links


def execution_order(graph: dict[str, Any], targets: list[str]) -> list[str]:
    """The nodes the outputs `targets` need, dependencies first."""
    seen: list[str] = []

    def visit(nid: str) -> None:
        if nid in seen:
            return
        for value in (graph[nid].get("inputs") or {}).values():
            if isinstance(value, list):
                visit(str(value[0]))
        seen.append(nid)

    for t in targets:
        visit(t)
    return seen


#: Checkpoints the fake "has": real ComfyUI lists them under CheckpointLoaderSimple.
CHECKPOINTS = ["fake_sd15.safetensors", "fake_sdxl.safetensors"]


def object_info() -> dict[str, Any]:
    """`GET /object_info` for the fake's node classes, plus a checkpoint loader's list."""
    loader = {
        "CheckpointLoaderSimple": {
            "input": {"required": {"ckpt_name": [CHECKPOINTS, {}]}},
            "output_node": False,
            "name": "CheckpointLoaderSimple",
            "display_name": "Load Checkpoint",
            "category": "loaders",
        }
    }
    return {
        name: {
            "input": {"required": {k: [v[0], {}] for k, v in spec.items()}},
            "output_node": is_out,
            "name": name,
            "display_name": name,
            "category": "fake",
        }
        for name, (spec, is_out) in NODES.items()
    } | loader


def system_stats() -> dict[str, Any]:
    """`GET /system_stats`: one CPU device with 8 GiB."""
    return {
        "system": {"os": "posix", "comfyui_version": "0.3.64", "python_version": "3.11"},
        "devices": [
            {
                "name": "cpu",
                "type": "cpu",
                "index": None,
                "vram_total": 8 * 2**30,
                "vram_free": 6 * 2**30,
                "torch_vram_total": 0,
                "torch_vram_free": 0,
            }
        ],
    }
