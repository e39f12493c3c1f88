"""docs/configuration.md lists every `EMPQ_*` setting of `empq.config` with its true default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic.fields import FieldInfo

from empq.config import HubSettings, WorkerSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

#: Defaults that depend on the machine, described in words in the doc.
COMPUTED = {"EMPQ_WORKER_ID"}


def documented_defaults() -> dict[str, str]:
    """`EMPQ_NAME` → the text of its "default" column, from every table in the doc."""
    found: dict[str, str] = {}
    column: int | None = None
    for line in DOC.read_text().splitlines():
        if not line.startswith("|"):
            column = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if "default" in cells:
            column = cells.index("default")
            continue
        name = re.fullmatch(r"`(EMPQ_[A-Z0-9_]+)`", cells[0])
        if name and column is not None:
            found[name.group(1)] = cells[column].strip("`")
    return found


def settings_fields() -> dict[str, FieldInfo]:
    fields: dict[str, FieldInfo] = {}
    for cls in (HubSettings, WorkerSettings):
        for name, info in cls.model_fields.items():
            fields[f"EMPQ_{name.upper()}"] = info
    return fields


def same_default(doc: str, value: Any) -> bool:
    if value is None or value == [] or value == {}:
        return doc == "unset"
    if isinstance(value, bool):
        return doc == str(value).lower()
    if isinstance(value, list):
        parts = doc.split(",")
        return len(parts) == len(value) and all(
            same_default(p, v) for p, v in zip(parts, value, strict=True)
        )
    if isinstance(value, int | float):
        return float(doc) == float(value)
    return doc == str(value)


def test_every_setting_is_documented() -> None:
    missing = sorted(set(settings_fields()) - set(documented_defaults()))
    assert not missing, f"add these to docs/configuration.md: {missing}"


@pytest.mark.parametrize("variable", sorted(set(settings_fields()) - COMPUTED))
def test_documented_default_is_the_real_one(variable: str) -> None:
    info = settings_fields()[variable]
    value = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
    documented = documented_defaults().get(variable)
    if documented is None:
        pytest.fail(f"{variable} is not in docs/configuration.md")
    assert same_default(documented, value), f"{variable}: doc says {documented!r}, code {value!r}"


def test_doc_names_no_setting_that_does_not_exist() -> None:
    client_side = {"EMPQ_HUB", "EMPQ_API_KEY"}
    unknown = set(documented_defaults()) - set(settings_fields()) - client_side
    assert not unknown, f"docs/configuration.md lists settings the code lacks: {sorted(unknown)}"
