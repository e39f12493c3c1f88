"""JSON from outside, read strictly: finite numbers only, nesting bounded.

Python's `json` reads `NaN`, `Infinity` and `1e999` (as `inf`), none of which is JSON
a job can carry: stored, they break Redis arithmetic (`HINCRBYFLOAT` refuses them) and
every later reader. A document nested a thousand levels deep makes the parser, or
whatever walks the value next, run out of stack. Both are refused here, at the edge,
with a `ProtocolError` naming where the bad value is.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Deepest nesting of objects and arrays accepted (a ComfyUI workflow is ~5 deep).
MAX_DEPTH = 64


class StrictJsonError(ValueError):
    """The text is not JSON an empq message may be; `code` is the protocol error code."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class _NonFinite:
    """Stands in for a non-finite number until the parse is over, so its place is known."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def _path(parts: list[str | int]) -> str:
    return ".".join(str(p) for p in parts) or "(message)"


def _check(value: Any) -> None:
    """Walk the parsed value: too deep, or holding a non-finite number, is an error.

    Skipped for the common case: a text with fewer brackets than `MAX_DEPTH` cannot be
    nested that deep, and one with no stand-in seen needs no search for it.
    """
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, where = stack.pop()
        if len(where) > MAX_DEPTH:
            raise StrictJsonError(
                "NESTED_TOO_DEEP",
                f"message nests objects and arrays more than {MAX_DEPTH} levels deep",
                _path(where[:MAX_DEPTH]),
            )
        if isinstance(node, dict):
            stack.extend((v, [*where, k]) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, [*where, i]) for i, v in enumerate(node))
        elif isinstance(node, _NonFinite):
            raise StrictJsonError(
                "VALIDATION_ERROR",
                f"field {_path(where)}: {node.text} is not a finite number",
                _path(where),
            )


def loads(raw: str | bytes) -> Any:
    """The value of a JSON text, or `StrictJsonError`."""
    seen: list[str] = []

    def constant(text: str) -> _NonFinite:
        seen.append(text)
        return _NonFinite(text)

    def number(text: str) -> float | _NonFinite:
        value = _float(text)
        if isinstance(value, _NonFinite):
            seen.append(text)
        return value

    try:
        value = json.loads(raw, parse_float=number, parse_constant=constant)
    except RecursionError:
        raise StrictJsonError(
            "NESTED_TOO_DEEP", f"message nests more than {MAX_DEPTH} levels deep"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StrictJsonError("INVALID_JSON", f"message is not valid JSON: {exc}") from exc
    if isinstance(raw, str):
        brackets = raw.count("{") + raw.count("[")
    else:
        brackets = raw.count(b"{") + raw.count(b"[")
    if seen or brackets > MAX_DEPTH:
        _check(value)
    return value
