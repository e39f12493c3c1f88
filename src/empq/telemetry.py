"""OpenTelemetry tracing, optional (`pip install 'emp-job-queue[otel]'`) and off by default.

It is on when the OpenTelemetry SDK is installed and the standard variables ask for it:
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, or
`OTEL_TRACES_EXPORTER` naming an exporter (`otlp`, `console`); `OTEL_SDK_DISABLED=true`
turns it off. `OTEL_SERVICE_NAME` names the process (default `empq-hub` /
`empq-worker`), `OTEL_RESOURCE_ATTRIBUTES` and the OTLP variables work as the SDK
documents them.

One job is one trace. Its context travels in W3C `traceparent` form: a submission's
`traceparent` (a field of the body or WebSocket message, or the HTTP header of
`POST /api/jobs`) makes the job join the caller's trace; the job keeps the context of
its `empq.submit` span, `job_assigned` carries it to the worker, and the worker's HTTP
calls to the services send it on as the `traceparent` header. Spans:

| span | process | parent |
|---|---|---|
| `POST /api/jobs` | hub | the caller's `traceparent` header |
| `empq.submit` | hub | that request, else the submission's `traceparent` |
| `empq.claim` (from queued to assigned) | hub that assigned it | `empq.submit` |
| `empq.run` | worker | `empq.submit` |
| `connector <name>` | worker | `empq.run` |
| `HTTP <method>` | worker | `connector <name>` |
| `empq.complete` / `empq.fail` | hub that recorded it | `empq.submit` |

While tracing is off every function here costs a flag test and returns at once.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

_state: dict[str, Any] = {"tracer": None, "provider": None}

TRACEPARENT = "traceparent"


def configured_by_environment(env: Mapping[str, str] | None = None) -> bool:
    """Whether the standard `OTEL_*` variables ask for tracing."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def use(provider: TracerProvider | None) -> None:
    """Trace through `provider` from now on (None: stop tracing)."""
    if provider is None:
        _state.update(tracer=None, provider=None)
        return
    _state.update(tracer=provider.get_tracer("empq"), provider=provider)


def enabled() -> bool:
    """Whether spans are being recorded."""
    return _state["tracer"] is not None


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


@contextlib.contextmanager
def configured(service_name: str) -> Iterator[None]:
    """Tracing for this process while inside, if the environment asks for it; flushed on exit."""
    if not configured_by_environment():
        yield
        return
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        from empq.errors import EmpqError

        raise EmpqError(
            "OTEL_* variables ask for tracing but OpenTelemetry is not installed "
            "(pip install 'emp-job-queue[otel]')"
        ) from exc
    service = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    for name in (os.environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(","):
        provider.add_span_processor(BatchSpanProcessor(_exporter(name.strip().lower())))
    use(provider)
    try:
        yield
    finally:
        use(None)
        provider.shutdown()


# ------------------------------------------------------------------ context


def _context(traceparent: str | None) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not traceparent:
        return None
    return TraceContextTextMapPropagator().extract({TRACEPARENT: traceparent})


def traceparent_of(span: Span) -> str | None:
    """The W3C `traceparent` of `span`."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT)


def _tracer() -> Tracer:
    tracer: Tracer = _state["tracer"]
    return tracer


@contextlib.contextmanager
def span(
    name: str, *, parent: str | None = None, attributes: Mapping[str, Any] | None = None
) -> Iterator[Span | None]:
    """A span around the block, current inside it; child of the current span, else of
    `parent` (a `traceparent`). Yields None while tracing is off."""
    if _state["tracer"] is None:
        yield None
        return
    from opentelemetry import trace

    current = trace.get_current_span().get_span_context()
    context = None if current.is_valid else _context(parent)
    with _tracer().start_as_current_span(name, context=context, attributes=_attrs(attributes)) as s:
        yield s


def record(
    name: str,
    *,
    parent: str | None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    attributes: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """A finished span, child of `parent` (a job's `traceparent`), for a change already made."""
    if _state["tracer"] is None or not parent:
        return
    from opentelemetry.trace import Status, StatusCode

    now_ns = time.time_ns()
    start = now_ns if start_ms is None else start_ms * 1_000_000
    s = _tracer().start_span(
        name, context=_context(parent), attributes=_attrs(attributes), start_time=start
    )
    if error is not None:
        s.set_status(Status(StatusCode.ERROR, error))
    s.end(end_time=max(start, now_ns if end_ms is None else end_ms * 1_000_000))


def submit_traceparent(given: str | None, attributes: Mapping[str, Any]) -> str | None:
    """The `traceparent` a new job keeps: its `empq.submit` span's, or `given` untouched
    while tracing is off (so an outside trace still reaches the services)."""
    if _state["tracer"] is None:
        return given
    with span("empq.submit", parent=given, attributes=attributes) as s:
        return traceparent_of(s) if s is not None else given


def _attrs(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not attributes:
        return None
    return {k: v for k, v in attributes.items() if v is not None}


# ------------------------------------------------------------------ HTTP


class TracedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that wraps each request in a client span and sends `traceparent`."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if _state["tracer"] is None:
            return await self.inner.handle_async_request(request)
        from opentelemetry.trace import SpanKind, Status, StatusCode

        with _tracer().start_as_current_span(
            f"HTTP {request.method}",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": request.method, "url.full": str(request.url)},
        ) as s:
            parent = traceparent_of(s)
            if parent is not None:
                request.headers[TRACEPARENT] = parent
            response = await self.inner.handle_async_request(request)
            s.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                s.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def http_transport() -> httpx.AsyncBaseTransport | None:
    """The transport for a connector's HTTP client: traced while tracing is on, else None
    (httpx's own, with its proxy and TLS settings from the environment)."""
    return TracedTransport() if _state["tracer"] is not None else None


# ------------------------------------------------------------------ ASGI


def asgi(app: Callable[..., Any]) -> Callable[..., Any]:
    """`app` with a server span for each `POST /api/jobs...` that joins the caller's
    `traceparent` header (when tracing is on)."""

    async def traced(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            _state["tracer"] is None
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith("/api/jobs")
        ):
            await app(scope, receive, send)
            return
        from opentelemetry.trace import SpanKind

        header = next(
            (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"traceparent"),
            None,
        )
        with _tracer().start_as_current_span(
            f"POST {scope['path']}", context=_context(header), kind=SpanKind.SERVER
        ):
            await app(scope, receive, send)

    return traced
