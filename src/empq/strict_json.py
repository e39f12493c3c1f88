"""JSON from outside, read strictly: finite numbers only, nesting bounded.

Python's `json` reads `NaN`, `Infinity` and `1e999` (as `inf`), none of which is JSON
a job can carry: stored, they break Redis arithmetic (`HINCRBYFLOAT` refuses them) and
every later reader. A document nested a thousand levels deep makes the parser, or
whatever walks the value next, run out of stack. Both are refused here, at the edge,
with an error naming where the bad value is.

The text is parsed by pydantic-core's parser (Rust, two to three times `json.loads`'s
speed), which refuses `NaN` and `Infinity` and anything nested deeper than
`MAX_DEPTH`. A literal too large for a float (`1e999`) it reads as infinity; such a
literal needs a long exponent, so only a text that has one is searched for the value.
Refused texts are parsed again by `json` to say where.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic_core import from_json

#: Deepest nesting of objects and arrays accepted: pydantic-core's parser's own limit
#: (a ComfyUI workflow is about 5 deep).
MAX_DEPTH = 200

#: A number literal that may overflow a float: one with an exponent of 3+ digits. (A
#: mantissa of 309+ digits overflows too; searching every text for digit runs that long
#: would cost more than the parse, and such a value can only sit in a free-form field
#: such as `payload`, where it is stored as null: no float field accepts it.)
_HUGE = re.compile(r"[eE][+-]?\d\d\d")
_HUGE_BYTES = re.compile(rb"[eE][+-]?\d\d\d")


class StrictJsonError(ValueError):
    """The text is not JSON an empq message may be; `code` is the protocol error code."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def _path(parts: list[str | int]) -> str:
    return ".".join(str(p) for p in parts) or "(message)"


def non_finite_path(value: Any) -> str | None:
    """The path of the first non-finite number in `value`, if any."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, [*where, k]) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, [*where, i]) for i, v in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            return _path(where)
    return None


def _refusal(raw: str | bytes, parser_error: ValueError) -> StrictJsonError:
    """Why pydantic-core refused the text, as precisely as `json` can tell."""
    if "recursion limit" in str(parser_error):
        return StrictJsonError(
            "NESTED_TOO_DEEP", f"message nests objects and arrays more than {MAX_DEPTH} deep"
        )
    try:
        value = json.loads(raw)
    except RecursionError:
        return StrictJsonError("NESTED_TOO_DEEP", f"message nests more than {MAX_DEPTH} deep")
    except (ValueError, UnicodeDecodeError) as exc:
        return StrictJsonError("INVALID_JSON", f"message is not valid JSON: {exc}")
    where = non_finite_path(value)
    if where is not None:
        return StrictJsonError(
            "VALIDATION_ERROR", f"field {where}: NaN and Infinity are not JSON numbers", where
        )
    return StrictJsonError("INVALID_JSON", f"message is not valid JSON: {parser_error}")


def loads(raw: str | bytes) -> Any:
    """The value of a JSON text, or `StrictJsonError`."""
    try:
        value = from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        raise _refusal(raw, exc) from None
    huge = _HUGE.search(raw) if isinstance(raw, str) else _HUGE_BYTES.search(raw)
    if huge:
        where = non_finite_path(value)
        if where is not None:
            raise StrictJsonError(
                "VALIDATION_ERROR", f"field {where}: number too large to be finite", where
            )
    return value
