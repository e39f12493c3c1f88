"""`python -m tests.support.traced_worker`: `python -m empq.worker` with its spans kept by
the OpenTelemetry SDK's in-memory exporter and written, as JSON, to `$EMPQ_TEST_SPANS`
when the worker stops (SIGTERM)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from empq import telemetry
from empq.worker.__main__ import main


def run() -> int:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use(provider)
    try:
        return main()
    finally:
        spans = [json.loads(s.to_json()) for s in exporter.get_finished_spans()]
        Path(os.environ["EMPQ_TEST_SPANS"]).write_text(json.dumps(spans))


if __name__ == "__main__":
    sys.exit(run())
