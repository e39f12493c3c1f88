"""OpenTelemetry: one job is one connected trace, across the hub and a worker process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from empq import telemetry
from tests.hub.conftest import Receiver
from tests.support.child_output import ChildOutput
from tests.support.hub_fixtures import HubHandle
from tests.worker.conftest import wait_for_job

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """Tracing on in this process (the hub), into the SDK's in-memory exporter."""
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use(tp)
    yield tp, exporter
    telemetry.use(None)
    tp.shutdown()


def test_tracing_is_off_unless_the_otel_variables_ask() -> None:
    assert not telemetry.configured_by_environment({})
    assert telemetry.configured_by_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert telemetry.configured_by_environment({"OTEL_TRACES_EXPORTER": "console"})
    assert not telemetry.configured_by_environment({"OTEL_TRACES_EXPORTER": "none"})
    assert not telemetry.configured_by_environment(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    )
    assert not telemetry.enabled()


async def test_a_submitted_traceparent_passes_through_while_tracing_is_off(
    hub: HubHandle,
) -> None:
    parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    async with hub.client() as http:
        r = await http.post("/api/jobs", json={"type": "t", "traceparent": parent})
        job = (await http.get(f"/api/jobs/{r.json()['job_id']}")).json()
        assert job["traceparent"] == parent
        bad = await http.post("/api/jobs", json={"type": "t", "traceparent": "nope"})
        assert bad.status_code == 422
        assert "traceparent" in bad.text


def _hex(value: str | None) -> str | None:
    return None if value is None else value.removeprefix("0x")


async def test_one_job_is_one_trace_across_hub_and_worker(
    hub: HubHandle,
    receiver: Receiver,
    provider: tuple[TracerProvider, InMemorySpanExporter],
    tmp_path: Path,
) -> None:
    tp, exporter = provider
    spans_file = tmp_path / "worker-spans.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMPQ_", "OTEL_"))}
    env.update(
        EMPQ_HUB_URL=hub.ws_url,
        EMPQ_WORKER_ID="traced",
        EMPQ_CONNECTORS="rest_sync",
        EMPQ_HEARTBEAT_INTERVAL="1",
        EMPQ_TEST_SPANS=str(spans_file),
    )
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "tests.support.traced_worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = ChildOutput(proc, tmp_path / "worker.log")
    try:
        assert await output.wait_for("registered with hub", 15), output.text()
        client_span = tp.get_tracer("test").start_span("client request")
        caller = telemetry.traceparent_of(client_span)
        async with hub.client() as http:
            r = await http.post(
                "/api/jobs",
                json={
                    "type": "render",
                    "requirements": {"service_type": "rest_sync"},
                    "payload": {"url": f"{receiver.url}/render", "body": {"prompt": "cat"}},
                },
                headers={"traceparent": caller or ""},
            )
            assert r.status_code == 201, r.text
            done = await wait_for_job(http, r.json()["job_id"], within=15)
        client_span.end()
        assert done["status"] == "completed", done
        call = await receiver.next()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 15)
    hub_spans = [json.loads(s.to_json()) for s in exporter.get_finished_spans()]
    worker_spans: list[dict[str, Any]] = json.loads(spans_file.read_text())
    spans = hub_spans + worker_spans
    trace_id = _hex(hub_spans[0]["context"]["trace_id"])
    by_id = {_hex(s["context"]["span_id"]): s for s in spans}
    names = {s["name"] for s in spans}
    assert {
        "client request",
        "POST /api/jobs",
        "empq.submit",
        "empq.claim",
        "empq.run",
        "connector rest_sync",
        "HTTP POST",
        "empq.complete",
    } <= names, names
    # one trace: every span has the caller's trace id, and every parent is in it
    assert {_hex(s["context"]["trace_id"]) for s in spans} == {trace_id}
    roots = [s for s in spans if s["parent_id"] is None]
    assert [r["name"] for r in roots] == ["client request"]
    assert all(_hex(s["parent_id"]) in by_id for s in spans if s["parent_id"] is not None)

    def parent_name(name: str) -> str:
        (s,) = [s for s in spans if s["name"] == name]
        return str(by_id[_hex(s["parent_id"])]["name"])

    assert parent_name("empq.submit") == "POST /api/jobs"
    assert parent_name("empq.run") == "empq.submit"
    assert parent_name("HTTP POST") == "connector rest_sync"
    assert parent_name("empq.complete") == "empq.submit"
    # the service was called with the trace context of that HTTP span
    sent = call.headers["traceparent"].split("-")
    (http_span,) = [s for s in worker_spans if s["name"] == "HTTP POST"]
    assert sent[1] == trace_id
    assert sent[2] == _hex(http_span["context"]["span_id"])
