"""Unauthenticated routes: health, readiness, metrics, and the dashboard's pages."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST

from empq import __version__
from empq.hub.routes.api_jobs import HubDep

router = APIRouter(tags=["system"])


@router.get("/health", summary="200 while the process is up")
async def health(hub: HubDep) -> dict[str, str]:
    return {"status": "ok", "hub_id": hub.hub_id, "version": __version__}


@router.get("/ready", summary="200 only while Redis answers")
async def ready(hub: HubDep) -> JSONResponse:
    if await hub.broker.ping():
        return JSONResponse({"status": "ready", "hub_id": hub.hub_id})
    return JSONResponse(
        {"error": {"code": "NOT_READY", "message": "redis does not answer", "details": None}},
        status_code=503,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(hub: HubDep) -> Response:
    await hub.metrics.refresh(hub.broker, hub.registry)
    return Response(hub.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _dashboard_dir() -> Path | None:
    try:
        folder = Path(str(resources.files("empq.dashboard").joinpath("static")))
    except ModuleNotFoundError:
        return None
    return folder if (folder / "index.html").is_file() else None


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at `/` and `/dashboard`, its assets at `/dashboard/static`."""
    folder = _dashboard_dir()

    async def page() -> HTMLResponse:
        if folder is None:
            return HTMLResponse(
                "<!doctype html><title>empq</title><p>The dashboard is not installed. "
                'The API is at <a href="/docs">/docs</a>.</p>'
            )
        return HTMLResponse((folder / "index.html").read_text(encoding="utf-8"))

    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/dashboard", page, methods=["GET"], include_in_schema=False)
    if folder is not None:
        app.mount("/dashboard/static", StaticFiles(directory=folder), name="dashboard-static")
