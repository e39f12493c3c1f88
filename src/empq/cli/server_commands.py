"""`empq hub`, `empq worker` and `empq dev`: the long-running processes.

Settings come from `EMPQ_*` variables; a flag given on the command line wins. The hub
and worker modules are imported inside the commands so that the client commands
start fast and work on machines that only submit jobs.
"""

from __future__ import annotations

import socket
from typing import Annotated, Any, TypeVar

import pydantic
import typer

from empq import runner, telemetry
from empq.cli import process_options as o
from empq.config import CommonSettings, HubSettings, WorkerSettings
from empq.errors import EmpqError, ValidationError
from empq.logging import configure

S = TypeVar("S", bound=CommonSettings)


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
    hub_host: o.HubHost = None,
    hub_port: o.HubPort = None,
    ws_port: o.WsPort = None,
    public_url: o.PublicUrl = None,
    redis_url: o.RedisUrl = None,
    redis_max_connections: o.RedisMaxConnections = None,
    redis_socket_timeout: o.RedisSocketTimeout = None,
    key_prefix: o.KeyPrefix = None,
    data_dir: o.DataDir = None,
    artifact_dir: o.ArtifactDir = None,
    artifact_max_bytes: o.ArtifactMaxBytes = None,
    heartbeat_timeout: o.HeartbeatTimeout = None,
    claim_timeout: o.ClaimTimeout = None,
    retry_delays: o.RetryDelays = None,
    event_stream_max: o.EventStreamMax = None,
    job_retention: o.JobRetention = None,
    stats_interval: o.StatsInterval = None,
    max_message_bytes: o.MaxMessageBytes = None,
    ws_max_queue: o.WsMaxQueue = None,
    ws_max_queue_bytes: o.WsMaxQueueBytes = None,
    ws_stall_seconds: o.WsStallSeconds = None,
    catchup_max_events: o.CatchupMaxEvents = None,
    catchup_max_seconds: o.CatchupMaxSeconds = None,
    claim_wait_max: o.ClaimWaitMax = None,
    warm_wait_seconds: o.WarmWaitSeconds = None,
    warm_window_seconds: o.WarmWindowSeconds = None,
    api_keys: o.ApiKeys = None,
    worker_tokens: o.WorkerTokens = None,
    webhook_deny_private: o.WebhookDenyPrivate = None,
    webhook_retry_delays: o.WebhookRetryDelays = None,
    alert_queue_depth: o.AlertQueueDepth = None,
    metrics_max_job_types: o.MetricsMaxJobTypes = None,
    api_keys_file: o.ApiKeysFile = None,
    fair_share: o.FairShare = None,
    customer_weights: o.CustomerWeights = None,
    customer_max_running: o.CustomerMaxRunning = None,
    customer_submit_rate: o.CustomerSubmitRate = None,
    usage_retention: o.UsageRetention = None,
    metrics_max_customers: o.MetricsMaxCustomers = None,
    log_level: o.LogLevel = None,
    log_format: o.LogFormat = None,
) -> None:
    """Run the hub: REST, WebSocket, dashboard and background tasks."""
    settings = build_settings(HubSettings, dict(locals()))
    configure(settings)
    ensure_ports_free(settings)
    from empq.hub.server import serve

    # serve() starts the embedded Redis itself when no URL is set
    with telemetry.configured("empq-hub"):
        runner.run(serve(settings))


def worker(
    *,
    hub_url: o.HubUrl = None,
    worker_id: o.WorkerId = None,
    worker_token: o.WorkerToken = None,
    connectors: o.Connectors = None,
    worker_config: o.Capabilities = None,
    service: Annotated[
        list[str] | None, typer.Option(help="A service this worker offers (repeatable).")
    ] = None,
    concurrent_jobs: o.ConcurrentJobs = None,
    claim_wait: o.ClaimWait = None,
    connector_loop: o.ConnectorLoop = None,
    heartbeat_interval: o.HeartbeatInterval = None,
    comfyui_url: o.ComfyuiUrl = None,
    a1111_url: o.A1111Url = None,
    simulation_duration: o.SimulationDuration = None,
    simulation_steps: o.SimulationSteps = None,
    simulation_failure_rate: o.SimulationFailureRate = None,
    hub_http_url: o.HubHttpUrl = None,
    http_host: o.HttpHost = None,
    http_port: o.HttpPort = None,
    shutdown_grace: o.ShutdownGrace = None,
    log_level: o.LogLevel = None,
    log_format: o.LogFormat = None,
) -> None:
    """Run one worker: connect to the hub, take jobs it can run, run them through connectors."""
    flags = dict(locals())
    flags.pop("service")
    settings = build_settings(WorkerSettings, flags)
    configure(settings)
    from empq.worker.capabilities import load_capabilities
    from empq.worker.runtime import run_worker

    caps = load_capabilities(settings, service or None, concurrent_jobs)
    with telemetry.configured("empq-worker"):
        runner.run(run_worker(settings, capabilities=caps))


def dev(
    *,
    workers: Annotated[
        int, typer.Option(min=0, max=64, help="Simulation workers to run.", show_default=True)
    ] = 2,
    hub_host: o.HubHost = None,
    hub_port: o.HubPort = None,
    ws_port: o.WsPort = None,
    redis_url: o.RedisUrl = None,
    key_prefix: o.KeyPrefix = None,
    data_dir: o.DataDir = None,
    artifact_dir: o.ArtifactDir = None,
    api_keys: o.ApiKeys = None,
    log_level: o.LogLevel = None,
    log_format: o.LogFormat = None,
) -> None:
    """Run Redis, a hub and simulation workers on this machine; Ctrl-C stops all of it.

    Other hub and worker settings reach them from the environment (`EMPQ_*`).
    """
    flags = dict(locals())
    flags.pop("workers")
    settings = build_settings(HubSettings, flags)
    configure(settings)
    ensure_ports_free(settings)
    from empq.dev import run_dev

    raise typer.Exit(run_dev(settings, workers=workers))


def register(app: typer.Typer) -> None:
    """Add the process commands to the `empq` app."""
    for command in (hub, worker, dev):
        app.command(rich_help_panel="Processes")(command)
