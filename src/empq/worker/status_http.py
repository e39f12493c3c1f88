"""The worker's optional HTTP port: `/health`, `/ready`, `/metrics` and a status page."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import socket
import time
from collections.abc import Generator
from typing import TYPE_CHECKING

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from empq.worker.runtime import Worker


log = logging.getLogger("empq.worker.status")


class _Server(uvicorn.Server):
    # The worker owns SIGTERM/SIGINT (graceful drain); uvicorn must not take them.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # The port bound, not the one asked for: with `EMPQ_HTTP_PORT=0` the OS picks.
            port = self.servers[0].sockets[0].getsockname()[1] if self.servers else self.config.port
            log.info("status port listening on %s:%s", self.config.host, port)


def status_app(worker: Worker) -> Starlette:
    """The ASGI app serving this worker's health, readiness, metrics and status page."""

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "worker_id": worker.worker_id})

    async def ready(request: Request) -> Response:
        ok = worker.ready()
        body = {
            "ready": ok,
            "connected": worker.link.connected,
            "status": worker.status.value,
            "connectors": worker.connector_status,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(worker.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def page(request: Request) -> Response:
        return HTMLResponse(render_status(worker))

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/ready", ready),
            Route("/metrics", metrics),
            Route("/", page),
        ]
    )


def render_status(worker: Worker) -> str:
    """A small self-contained HTML page about this one worker."""
    e = html.escape
    now = time.monotonic()
    running = (
        "".join(
            f"<tr><td>{e(j.job_id)}</td><td>{e(j.assignment.job_type)}</td>"
            f"<td>{j.progress:.0f}%</td><td>{now - j.started:.1f} s</td></tr>"
            for j in worker.jobs.values()
        )
        or "<tr><td colspan=4>none</td></tr>"
    )
    recent = (
        "".join(
            f"<tr><td>{e(r.job_id)}</td><td>{e(r.job_type)}</td><td>{e(r.outcome)}</td>"
            f"<td>{r.seconds:.2f} s</td><td>{e(r.error or '')}</td></tr>"
            for r in list(worker.metrics.recent)[:20]
        )
        or "<tr><td colspan=5>none yet</td></tr>"
    )
    connectors = (
        "".join(
            f"<tr><td>{e(name)}</td><td>{'healthy' if s.get('healthy') else 'unhealthy'}</td>"
            f"<td>{e(str(s.get('detail') or ''))}</td></tr>"
            for name, s in worker.connector_status.items()
        )
        or "<tr><td colspan=3>not checked yet</td></tr>"
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>empq worker {e(worker.worker_id)}</title>
<meta http-equiv="refresh" content="5">
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.2rem .6rem;text-align:left}}</style></head>
<body><h1>Worker {e(worker.worker_id)}</h1>
<p>Status: <b>{e(worker.status.value)}</b> · hub {e(worker.settings.hub_url)}
({"connected" if worker.link.connected else "disconnected"}) ·
slots {len(worker.jobs)}/{worker.slots} · jobs in the last hour: {worker.metrics.jobs_last_hour()}
· up {time.time() - worker.started_at:.0f} s</p>
<h2>Running jobs</h2><table><tr><th>job</th><th>type</th><th>progress</th><th>running</th></tr>
{running}</table>
<h2>Connectors</h2><table><tr><th>connector</th><th>health</th><th>detail</th></tr>
{connectors}</table>
<h2>Recent jobs</h2><table><tr><th>job</th><th>type</th><th>outcome</th><th>time</th>
<th>error</th></tr>{recent}</table></body></html>"""


async def serve_status(worker: Worker) -> None:
    """Serve the status app on `http_host:http_port` until cancelled."""
    config = uvicorn.Config(
        status_app(worker),
        host=worker.settings.http_host,
        port=worker.settings.http_port or 0,
        log_level="warning",
        lifespan="off",
    )
    server = _Server(config)
    try:
        await server.serve()
    except asyncio.CancelledError:
        # Cancelled mid-serve: close the listening socket and open connections now.
        server.force_exit = True
        await server.shutdown()
        raise
