"""Property-based checks of the REST API against its own `/openapi.json`: no 5xx, ever."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.hub_fixtures import HubHandle

EXAMPLES_PER_OPERATION = 12


def _fuzz(schema_doc: dict[str, Any], base_url: str) -> list[str]:
    """Run every operation's generated cases; return a line per server error."""
    schema = schemathesis.openapi.from_dict(schema_doc)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=operation.as_strategy(), _=st.none())
        def check(case: Any, _: None) -> None:
            response = case.call(base_url=base_url, timeout=10)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> "
                    f"{response.status_code}: {response.text[:200]}"
                )

        check()
    return failures


async def test_no_server_errors_for_generated_requests(hub: HubHandle) -> None:
    async with httpx.AsyncClient(base_url=hub.http_url) as http:
        doc = (await http.get("/openapi.json")).json()
        await http.post("/api/jobs", json={"type": "seed"})
    failures = await asyncio.to_thread(_fuzz, doc, hub.http_url)
    assert failures == []
