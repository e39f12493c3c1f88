"""Hypothesis strategies built from pydantic models: every field from its annotation
and constraints (lengths, bounds, literals, enums, nested models), so the fuzzer
produces what the protocol's models describe, and `mutated` what they do not."""

from __future__ import annotations

import types
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


def _bounds(meta: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in meta:
        if isinstance(m, at.Ge):
            out["min_value"] = m.ge
        elif isinstance(m, at.Gt):
            out["min_value"], out["exclude_min"] = m.gt, True
        elif isinstance(m, at.Le):
            out["max_value"] = m.le
        elif isinstance(m, at.Lt):
            out["max_value"], out["exclude_max"] = m.lt, True
        elif isinstance(m, at.MinLen):
            out["min_size"] = m.min_length
        elif isinstance(m, at.MaxLen):
            out["max_size"] = m.max_length
    return out


def for_type(tp: Any, meta: list[Any] | None = None) -> st.SearchStrategy[Any]:
    """Values of annotation `tp` under constraints `meta`."""
    meta = list(meta or [])
    origin = get_origin(tp)
    if origin is Annotated:
        base, *extra = get_args(tp)
        for e in extra:
            meta.extend(e.metadata if isinstance(e, FieldInfo) else [e])
        return for_type(base, meta)
    if origin in (Union, types.UnionType):
        return st.one_of(*(for_type(a, meta) for a in get_args(tp)))
    if origin is Literal:
        return st.sampled_from(get_args(tp))
    if origin is list:
        b = _bounds(meta)
        return st.lists(for_type(get_args(tp)[0]), min_size=b.get("min_size", 0), max_size=4)
    if origin is dict:
        return st.dictionaries(st.text(max_size=10), for_type(get_args(tp)[1]), max_size=4)
    if tp is type(None):
        return st.none()
    if tp is Any:
        return JSON
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return for_model(tp)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return st.sampled_from([e.value for e in tp])
    b = _bounds(meta)
    if tp is bool:
        return st.booleans()
    if tp is int:
        lo, hi = b.get("min_value"), b.get("max_value")
        lo = None if lo is None else lo + (1 if b.get("exclude_min") else 0)
        hi = None if hi is None else hi - (1 if b.get("exclude_max") else 0)
        return st.integers(min_value=lo, max_value=hi)
    if tp is float:
        keep = {
            k: v
            for k, v in b.items()
            if k in ("min_value", "max_value", "exclude_min", "exclude_max")
        }
        return st.floats(allow_nan=False, allow_infinity=False, **keep)
    if tp is str:
        lo = b.get("min_size", 0)
        return st.text(min_size=lo, max_size=min(b.get("max_size", 40), max(lo, 40)))
    return JSON


def for_model(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts the model accepts as to shape: required fields always, others sometimes."""
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        strategy = for_type(info.annotation, info.metadata)
        (required if info.is_required() else optional)[key] = strategy
    return st.fixed_dictionaries(required, optional=optional)


@st.composite
def mutated(draw: st.DrawFn, model: type[BaseModel]) -> dict[str, Any]:
    """A message of `model` with one field (not `type`) replaced by any JSON value."""
    message = dict(draw(for_model(model)))
    name = draw(st.sampled_from(sorted(set(model.model_fields) - {"type"})))
    message[name] = draw(JSON)
    return message
