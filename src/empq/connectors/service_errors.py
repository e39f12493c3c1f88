"""Service error replies turned into one line a person can act on.

ComfyUI's validation refusal says only `Prompt outputs failed validation`; the node,
its class and the input are deep in `node_errors`. A1111 (FastAPI) answers 422 with
`{"detail": [{loc, msg, type}]}`. These put what is wrong into the job's `error`:
`node 5 (EmptyImage): required input missing: height`, `steps: must be an integer`.
"""

from __future__ import annotations

from typing import Any

#: At most this many problems are spelled out; the rest are counted.
MAX_LISTED = 5


def comfyui_node_errors(node_errors: Any) -> str:
    """`node 5 (EmptyImage): required input missing: height; ...` from ComfyUI's `node_errors`."""
    if not isinstance(node_errors, dict):
        return ""
    lines: list[str] = []
    for node_id, entry in node_errors.items():
        if not isinstance(entry, dict):
            continue
        where = f"node {node_id}"
        if entry.get("class_type"):
            where += f" ({entry['class_type']})"
        errors = entry.get("errors") or [{}]
        for error in errors if isinstance(errors, list) else [errors]:
            lines.append(f"{where}: {_comfyui_problem(error)}")
    return _joined(lines)


def _comfyui_problem(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    kind = str(error.get("type") or "invalid input").replace("_", " ")
    extra = error.get("extra_info")
    name = extra.get("input_name") if isinstance(extra, dict) else None
    subject = str(name or error.get("details") or "")
    message = str(error.get("message") or "")
    text = f"{kind}: {subject}" if subject else kind
    # Generic messages repeat the type ("Required input is missing"); specific ones
    # carry the numbers ("Value 0 smaller than min of 1") and are worth keeping.
    if message and (not subject or any(ch.isdigit() for ch in message)):
        text += f" ({message})"
    return text


def fastapi_422(body: Any) -> str:
    """`steps: must be an integer in 1..150; ...` from a FastAPI 422 body."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if not isinstance(detail, list):
        return ""
    lines = []
    for item in detail:
        if not isinstance(item, dict):
            continue
        loc = [str(p) for p in item.get("loc") or [] if p != "body"]
        msg = str(item.get("msg") or item.get("type") or "invalid")
        lines.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return _joined(lines)


def field_errors(errors: Any) -> str:
    """`width: Input should be a valid integer; ...` from `[{field, message}]`."""
    if not isinstance(errors, list):
        return ""
    lines = [
        f"{e['field']}: {e['message']}" if e.get("field") else str(e.get("message"))
        for e in errors
        if isinstance(e, dict) and "message" in e
    ]
    return _joined(lines)


def _joined(lines: list[str]) -> str:
    if len(lines) > MAX_LISTED:
        rest = len(lines) - MAX_LISTED
        lines = [*lines[:MAX_LISTED], f"and {rest} more"]
    return "; ".join(lines)
