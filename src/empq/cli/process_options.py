"""The flags of `empq hub`, `empq worker` and `empq dev`: one per setting they use.

Each is built by `flags.setting` from its field in `empq.config`, so `--help` shows
the `EMPQ_*` variable and the true default. `tests/cli` checks that every field of
`HubSettings` is a flag of `empq hub` and every field of `WorkerSettings` one of
`empq worker`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from empq.cli.flags import setting
from empq.config import CommonSettings, HubSettings, WorkerSettings

H = HubSettings
W = WorkerSettings

LogLevel = Annotated[
    str | None, setting(CommonSettings, "log_level", "debug, info, warning or error.")
]
LogFormat = Annotated[str | None, setting(CommonSettings, "log_format", "console or json.")]

# ---------------------------------------------------------------- hub (and dev)
HubHost = Annotated[
    str | None, setting(H, "hub_host", "Interface to bind.", "--host", "--hub-host")
]
HubPort = Annotated[int | None, setting(H, "hub_port", "REST port (0: any free port).")]
WsPort = Annotated[int | None, setting(H, "ws_port", "WebSocket port (0: any free port).")]
RedisUrl = Annotated[
    str | None,
    setting(H, "redis_url", "redis://, rediss:// or cluster URL.", default_text="embedded"),
]
RedisMaxConnections = Annotated[
    int | None, setting(H, "redis_max_connections", "Redis connection pool size.")
]
RedisSocketTimeout = Annotated[
    float | None, setting(H, "redis_socket_timeout", "Seconds a Redis reply may take.")
]
KeyPrefix = Annotated[str | None, setting(H, "key_prefix", "Prefix of every Redis key.")]
DataDir = Annotated[Path | None, setting(H, "data_dir", "Embedded Redis data directory.")]
ArtifactDir = Annotated[Path | None, setting(H, "artifact_dir", "Where output files are kept.")]
ArtifactMaxBytes = Annotated[
    int | None, setting(H, "artifact_max_bytes", "Largest artifact upload (bytes); past it: 413.")
]
HeartbeatTimeout = Annotated[
    float | None,
    setting(H, "heartbeat_timeout", "Seconds of worker silence before its jobs go back."),
]
ClaimTimeout = Annotated[
    float | None, setting(H, "claim_timeout", "Seconds an assignment may wait to be accepted.")
]
RetryDelays = Annotated[str | None, setting(H, "retry_delays", "Back-off seconds before retry n.")]
EventStreamMax = Annotated[
    int | None, setting(H, "event_stream_max", "Events kept in the Redis stream.")
]
JobRetention = Annotated[
    float | None, setting(H, "job_retention", "Seconds finished jobs are kept.")
]
StatsInterval = Annotated[
    float | None, setting(H, "stats_interval", "Default stats_broadcast period, seconds.")
]
MaxMessageBytes = Annotated[
    int | None, setting(H, "max_message_bytes", "Largest WebSocket message accepted.")
]
WsMaxQueue = Annotated[
    int | None, setting(H, "ws_max_queue", "Messages a socket may have unsent before it is closed.")
]
WsMaxQueueBytes = Annotated[
    int | None,
    setting(H, "ws_max_queue_bytes", "Bytes a socket may have unsent before it is closed."),
]
WsStallSeconds = Annotated[
    float | None,
    setting(H, "ws_stall_seconds", "Seconds a send may be stuck, others waiting, before closing."),
]
CatchupMaxEvents = Annotated[
    int | None,
    setting(H, "catchup_max_events", "Events a reconnecting monitor may catch up on."),
]
CatchupMaxSeconds = Annotated[
    float | None,
    setting(H, "catchup_max_seconds", "How far back (seconds) a catch-up may reach."),
]
ClaimWaitMax = Annotated[
    float | None,
    setting(H, "claim_wait_max", "Longest a worker's claim may wait for a job (0: never)."),
]
WarmWaitSeconds = Annotated[
    float | None,
    setting(H, "warm_wait_seconds", "Seconds a job waits for a busy worker with its models warm."),
]
WarmWindowSeconds = Annotated[
    float | None,
    setting(H, "warm_window_seconds", "Warm jobs may pass older cold ones of their priority (s)."),
]
ApiKeys = Annotated[str | None, setting(H, "api_keys", "Comma-separated API keys.")]
WorkerTokens = Annotated[str | None, setting(H, "worker_tokens", "Comma-separated worker tokens.")]
WebhookDenyPrivate = Annotated[
    bool | None, setting(H, "webhook_deny_private", "Refuse webhooks to private addresses.")
]
PublicUrl = Annotated[
    str | None,
    setting(H, "public_url", "The hub's REST URL as workers reach it (artifact links)."),
]
WebhookRetryDelays = Annotated[
    str | None, setting(H, "webhook_retry_delays", "Back-off seconds between webhook attempts.")
]
AlertQueueDepth = Annotated[
    int | None, setting(H, "alert_queue_depth", "Queued jobs that raise a system_alert.")
]
MetricsMaxJobTypes = Annotated[
    int | None,
    setting(H, "metrics_max_job_types", "Job types labelled in /metrics; later ones: other."),
]
ApiKeysFile = Annotated[
    Path | None,
    setting(H, "api_keys_file", "File of more API key entries, one per line.", dir_okay=False),
]
FairShare = Annotated[
    str | None, setting(H, "fair_share", "customer: customers take turns at equal priority.")
]
CustomerWeights = Annotated[
    str | None, setting(H, "customer_weights", "Fair-share weights, ACME=2,BETA=1.")
]
CustomerMaxRunning = Annotated[
    str | None, setting(H, "customer_max_running", "Running-job limits, ACME=10,*=50.")
]
CustomerSubmitRate = Annotated[
    str | None, setting(H, "customer_submit_rate", "Submissions/s per customer, ACME=10,*=100.")
]
UsageRetention = Annotated[
    float | None, setting(H, "usage_retention", "Seconds usage accounting keeps its buckets.")
]
MetricsMaxCustomers = Annotated[
    int | None,
    setting(H, "metrics_max_customers", "Customers labelled in /metrics; the rest: _other."),
]

# ---------------------------------------------------------------- worker
HubUrl = Annotated[str | None, setting(W, "hub_url", "The hub's WebSocket URL.")]
WorkerId = Annotated[
    str | None, setting(W, "worker_id", "This worker's id.", default_text="host name + suffix")
]
WorkerToken = Annotated[str | None, setting(W, "worker_token", "Token the hub expects.")]
Connectors = Annotated[
    str | None, setting(W, "connectors", "Comma-separated connector names or module:Class.")
]
Capabilities = Annotated[
    Path | None,
    setting(
        W,
        "worker_config",
        "JSON or YAML capabilities file.",
        "--capabilities",
        "--worker-config",
        exists=True,
        dir_okay=False,
    ),
]
ClaimWait = Annotated[
    float | None,
    setting(W, "claim_wait", "Seconds each claim waits on the hub for a job (0: none)."),
]
ConcurrentJobs = Annotated[int | None, setting(W, "concurrent_jobs", "Jobs at once.")]
ConnectorLoop = Annotated[
    str | None,
    setting(W, "connector_loop", "own (a loop per connector not sharing the worker's) or shared."),
]
HeartbeatInterval = Annotated[
    float | None, setting(W, "heartbeat_interval", "Seconds between heartbeats.")
]
ComfyuiUrl = Annotated[str | None, setting(W, "comfyui_url", "ComfyUI's HTTP URL.")]
A1111Url = Annotated[str | None, setting(W, "a1111_url", "Automatic1111's HTTP URL.")]
SimulationDuration = Annotated[
    float | None, setting(W, "simulation_duration", "Seconds a simulated job takes.")
]
SimulationSteps = Annotated[
    int | None, setting(W, "simulation_steps", "Progress steps of a simulated job.")
]
SimulationFailureRate = Annotated[
    float | None, setting(W, "simulation_failure_rate", "Share of simulated jobs that fail.")
]
HubHttpUrl = Annotated[
    str | None,
    setting(W, "hub_http_url", "Hub REST URL for uploads.", default_text="announced by the hub"),
]
HttpHost = Annotated[str | None, setting(W, "http_host", "Interface of the status page.")]
HttpPort = Annotated[
    int | None, setting(W, "http_port", "Serve the status page and /metrics on this port.")
]
ShutdownGrace = Annotated[
    float | None, setting(W, "shutdown_grace", "Seconds running jobs get on SIGTERM.")
]
