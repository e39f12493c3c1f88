"""`empq hub`, `empq worker` and `empq dev`: the long-running processes.

Settings come from `EMPQ_*` variables; a flag given on the command line wins. The hub
and worker modules are imported inside the commands so that the client commands
start fast and work on machines that only submit jobs.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
import typer

from empq import runner
from empq.config import CommonSettings, HubSettings, WorkerSettings
from empq.errors import EmpqError, ValidationError
from empq.logging import configure

S = TypeVar("S", bound=CommonSettings)

LogLevel = Annotated[
    str | None, typer.Option(help="debug, info, warning or error [env EMPQ_LOG_LEVEL].")
]
LogFormat = Annotated[str | None, typer.Option(help="console or json [env EMPQ_LOG_FORMAT].")]


def build_settings(cls: type[S], flags: dict[str, Any]) -> S:
    """`cls` from the environment, with every flag that was given on top.

    A bad value raises `ValidationError` naming both the flag and its variable.
    """
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        return cls(**given)
    except pydantic.ValidationError as exc:
        errors = []
        for e in exc.errors(include_url=False):
            name = str(e["loc"][0]) if e["loc"] else "?"
            errors.append({"field": name, "message": e["msg"]})
        first = errors[0]
        flag = "--" + str(first["field"]).replace("_", "-")
        env = "EMPQ_" + str(first["field"]).upper()
        raise ValidationError(f"bad setting {flag} / {env}: {first['message']}", errors) from exc


def ensure_ports_free(settings: HubSettings) -> None:
    """Fail with one line naming the setting when a hub port is taken (uvicorn would
    only exit with a traceback)."""
    for port, flag in ((settings.hub_port, "--hub-port / EMPQ_HUB_PORT"),
                       (settings.ws_port, "--ws-port / EMPQ_WS_PORT")):  # fmt: skip
        if port == 0:
            continue
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((settings.hub_host, port))
            except OSError as exc:
                raise EmpqError(
                    f"cannot listen on {settings.hub_host}:{port} ({flag}): {exc.strerror}"
                ) from exc


def hub(
    *,
    host: Annotated[str | None, typer.Option(help="Interface to bind [env EMPQ_HUB_HOST].")] = None,
    hub_port: Annotated[int | None, typer.Option(help="REST port [env EMPQ_HUB_PORT].")] = None,
    ws_port: Annotated[int | None, typer.Option(help="WebSocket port [env EMPQ_WS_PORT].")] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="redis:// URL; unset: embedded [env EMPQ_REDIS_URL].")
    ] = None,
    key_prefix: Annotated[str | None, typer.Option(help="[env EMPQ_KEY_PREFIX].")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Embedded Redis data [env EMPQ_DATA_DIR].")
    ] = None,
    artifact_dir: Annotated[
        Path | None, typer.Option(help="Output files [env EMPQ_ARTIFACT_DIR].")
    ] = None,
    heartbeat_timeout: Annotated[
        float | None, typer.Option(help="Seconds [env EMPQ_HEARTBEAT_TIMEOUT].")
    ] = None,
    claim_timeout: Annotated[
        float | None, typer.Option(help="Seconds [env EMPQ_CLAIM_TIMEOUT].")
    ] = None,
    retry_delays: Annotated[
        str | None, typer.Option(help="e.g. 5,15,30 [env EMPQ_RETRY_DELAYS].")
    ] = None,
    stats_interval: Annotated[
        float | None, typer.Option(help="Seconds [env EMPQ_STATS_INTERVAL].")
    ] = None,
    api_keys: Annotated[
        str | None, typer.Option(help="Comma-separated [env EMPQ_API_KEYS].")
    ] = None,
    worker_tokens: Annotated[
        str | None, typer.Option(help="Comma-separated [env EMPQ_WORKER_TOKENS].")
    ] = None,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
) -> None:
    """Run the hub: REST, WebSocket, dashboard and background tasks."""
    settings = build_settings(
        HubSettings,
        {
            "hub_host": host,
            "hub_port": hub_port,
            "ws_port": ws_port,
            "redis_url": redis_url,
            "key_prefix": key_prefix,
            "data_dir": data_dir,
            "artifact_dir": artifact_dir,
            "heartbeat_timeout": heartbeat_timeout,
            "claim_timeout": claim_timeout,
            "retry_delays": retry_delays,
            "stats_interval": stats_interval,
            "api_keys": api_keys,
            "worker_tokens": worker_tokens,
            "log_level": log_level,
            "log_format": log_format,
        },
    )
    configure(settings)
    ensure_ports_free(settings)
    from empq.hub.server import serve

    # serve() starts the embedded Redis itself when no URL is set
    runner.run(serve(settings))


def worker(
    *,
    hub_url: Annotated[
        str | None, typer.Option(help="Hub WebSocket, ws://host:3002 [env EMPQ_HUB_URL].")
    ] = None,
    worker_id: Annotated[str | None, typer.Option(help="[env EMPQ_WORKER_ID].")] = None,
    connectors: Annotated[
        str | None,
        typer.Option(help="Comma-separated names or module:Class [env EMPQ_CONNECTORS]."),
    ] = None,
    capabilities: Annotated[
        Path | None,
        typer.Option(
            help="JSON or YAML capabilities file [env EMPQ_WORKER_CONFIG].",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    service: Annotated[
        list[str] | None, typer.Option(help="A service this worker offers (repeatable).")
    ] = None,
    concurrent_jobs: Annotated[
        int | None, typer.Option(help="Jobs at once [env EMPQ_CONCURRENT_JOBS].")
    ] = None,
    heartbeat_interval: Annotated[
        float | None, typer.Option(help="Seconds [env EMPQ_HEARTBEAT_INTERVAL].")
    ] = None,
    worker_token: Annotated[
        str | None, typer.Option(help="Token the hub expects [env EMPQ_WORKER_TOKEN].")
    ] = None,
    http_port: Annotated[
        int | None,
        typer.Option(help="Serve the worker's status page on this port [env EMPQ_HTTP_PORT]."),
    ] = None,
    hub_http_url: Annotated[
        str | None,
        typer.Option(help="Hub REST URL for artifact uploads [env EMPQ_HUB_HTTP_URL]."),
    ] = None,
    shutdown_grace: Annotated[
        float | None,
        typer.Option(help="Seconds running jobs get on SIGTERM [env EMPQ_SHUTDOWN_GRACE]."),
    ] = None,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
) -> None:
    """Run one worker: connect to the hub, take jobs it can run, run them through connectors."""
    settings = build_settings(
        WorkerSettings,
        {
            "hub_url": hub_url,
            "worker_id": worker_id,
            "connectors": connectors,
            "worker_config": capabilities,
            "concurrent_jobs": concurrent_jobs,
            "heartbeat_interval": heartbeat_interval,
            "worker_token": worker_token,
            "http_port": http_port,
            "hub_http_url": hub_http_url,
            "shutdown_grace": shutdown_grace,
            "log_level": log_level,
            "log_format": log_format,
        },
    )
    configure(settings)
    from empq.worker.capabilities import load_capabilities
    from empq.worker.runtime import run_worker

    caps = load_capabilities(settings, service or None, concurrent_jobs)
    runner.run(run_worker(settings, capabilities=caps))


def dev(
    *,
    workers: Annotated[int, typer.Option(min=0, max=64, help="Simulation workers to run.")] = 2,
    hub_port: Annotated[int | None, typer.Option(help="REST port [env EMPQ_HUB_PORT].")] = None,
    ws_port: Annotated[int | None, typer.Option(help="WebSocket port [env EMPQ_WS_PORT].")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where Redis keeps its data [env EMPQ_DATA_DIR].")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="Use this Redis instead of an embedded one.")
    ] = None,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
) -> None:
    """Run Redis, a hub and simulation workers on this machine; Ctrl-C stops all of it."""
    settings = build_settings(
        HubSettings,
        {
            "hub_port": hub_port,
            "ws_port": ws_port,
            "data_dir": data_dir,
            "redis_url": redis_url,
            "log_level": log_level,
            "log_format": log_format,
        },
    )
    configure(settings)
    ensure_ports_free(settings)
    from empq.dev import run_dev

    raise typer.Exit(run_dev(settings, workers=workers))


def register(app: typer.Typer) -> None:
    """Add the process commands to the `empq` app."""
    for command in (hub, worker, dev):
        app.command(rich_help_panel="Processes")(command)
