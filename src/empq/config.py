"""Settings from `EMPQ_*` environment variables (CONTRACT §7); flags override them."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from empq.credentials import ApiKey, parse_api_keys, parse_worker_token, read_key_file
from empq.redis_url import check_redis_url


def _split(value: object) -> object:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _pairs(value: object) -> object:
    """`ACME=2,BETA=1` -> {"ACME": "2", "BETA": "1"} (pydantic then checks the values)."""
    if not isinstance(value, str):
        return value
    out: dict[str, str] = {}
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        name, sep, number = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{item!r} is not NAME=NUMBER")
        out[name.strip()] = number.strip()
    return out


class CommonSettings(BaseSettings):
    """Settings every empq process reads."""

    model_config = SettingsConfigDict(env_prefix="EMPQ_", extra="ignore")

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class BrokerSettings(CommonSettings):
    """Where the queue lives and how it treats jobs."""

    redis_url: str | None = None
    redis_max_connections: Annotated[int, Field(ge=1)] = 1000
    redis_socket_timeout: Annotated[float | None, Field(gt=0)] = None
    key_prefix: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")] = "empq"
    data_dir: Path = Path(".empq")
    heartbeat_timeout: Annotated[float, Field(gt=0)] = 60
    claim_timeout: Annotated[float, Field(gt=0)] = 30
    retry_delays: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 15.0, 30.0]
    )
    event_stream_max: Annotated[int, Field(ge=100)] = 100_000
    job_retention: Annotated[float, Field(ge=0)] = 7 * 24 * 3600
    #: `customer`: at equal effective priority, customers take turns (docs/tenants.md).
    fair_share: Literal["off", "customer"] = "off"
    #: Fair-share weight per customer (`ACME=2,BETA=1`); unlisted customers weigh 1.
    customer_weights: Annotated[dict[str, Annotated[float, Field(gt=0, le=1000)]], NoDecode] = (
        Field(default_factory=dict)
    )
    #: Most jobs a customer may hold running at once (`ACME=10,*=50`; `*` for the rest).
    customer_max_running: Annotated[dict[str, Annotated[int, Field(ge=0)]], NoDecode] = Field(
        default_factory=dict
    )
    #: Submissions per second a customer key may make (`ACME=10,*=100`), in bursts of
    #: up to ten seconds' worth; past it, 429 with Retry-After.
    customer_submit_rate: Annotated[dict[str, Annotated[float, Field(gt=0)]], NoDecode] = Field(
        default_factory=dict
    )
    #: How long usage accounting keeps its hourly buckets.
    usage_retention: Annotated[float, Field(gt=0)] = 90 * 24 * 3600

    @field_validator(
        "customer_weights", "customer_max_running", "customer_submit_rate", mode="before"
    )
    @classmethod
    def _name_numbers(cls, value: object) -> object:
        return _pairs(value)

    def customer_weight(self, customer_id: str | None) -> float:
        """The fair-share weight of a customer (1 unless configured)."""
        return self.customer_weights.get(customer_id or "", 1.0)

    def submit_rate(self, customer_id: str) -> float | None:
        """Submissions per second the customer may make, or None for unlimited."""
        rates = self.customer_submit_rate
        return rates.get(customer_id, rates.get("*"))

    def max_running(self, customer_id: str | None) -> int | None:
        """The customer's running-jobs limit, or None for unlimited."""
        limits = self.customer_max_running
        if customer_id is not None and customer_id in limits:
            return limits[customer_id]
        return limits.get("*")

    #: A worker may claim a job with its models warm ahead of older cold jobs of the same
    #: effective priority submitted at most this much earlier (0: strict order).
    warm_window_seconds: Annotated[float, Field(ge=0, le=86_400)] = 0

    @field_validator("retry_delays", mode="before")
    @classmethod
    def _delays(cls, value: object) -> object:
        return _split(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_redis_url(value)
        return value

    @field_validator("retry_delays")
    @classmethod
    def _non_negative(cls, value: list[float]) -> list[float]:
        if not value or any(v < 0 for v in value):
            raise ValueError("must be one or more non-negative numbers of seconds")
        return value


class HubSettings(BrokerSettings):
    """`empq hub`."""

    hub_host: str = "127.0.0.1"
    hub_port: Annotated[int, Field(ge=0, le=65535)] = 3001
    ws_port: Annotated[int, Field(ge=0, le=65535)] = 3002
    artifact_dir: Path = Path(".empq/artifacts")
    stats_interval: Annotated[float, Field(gt=0)] = 5
    max_message_bytes: Annotated[int, Field(ge=1024)] = 10 * 1024 * 1024
    ws_max_queue: Annotated[int, Field(ge=1)] = 10_000
    #: The longest a worker's `claim_job.wait_seconds` may park a claim (`claim_wait_max`).
    claim_wait_max: Annotated[float, Field(ge=0, le=3600)] = 30
    # A socket whose unsent messages pass either bound is closed as a slow consumer.
    ws_max_queue_bytes: Annotated[int, Field(ge=65536)] = 8 * 1024 * 1024
    ws_stall_seconds: Annotated[float, Field(gt=0)] = 30
    # A reconnecting monitor's catch-up (`since`): at most this many events, this old.
    catchup_max_events: Annotated[int, Field(ge=1)] = 1000
    catchup_max_seconds: Annotated[float, Field(gt=0)] = 3600
    #: A job whose models are warm only on busy workers waits this long for one of them
    #: before an idle cold worker is woken for it (0: wake at once).
    warm_wait_seconds: Annotated[float, Field(ge=0, le=600)] = 0.5
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: A file of more `EMPQ_API_KEYS` entries, one per line (`#` comments).
    api_keys_file: Path | None = None
    worker_tokens: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_deny_private: bool = False
    public_url: str | None = None
    webhook_retry_delays: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [1.0, 5.0, 15.0]
    )
    alert_queue_depth: Annotated[int, Field(ge=1)] = 1000
    #: Most customers with a label of their own in `empq_gpu_seconds_total` (the rest
    #: are summed under `customer="_other"`).
    metrics_max_customers: Annotated[int, Field(ge=0, le=10_000)] = 100
    #: Largest artifact upload accepted (bytes); past it the upload gets 413.
    artifact_max_bytes: Annotated[int, Field(ge=1)] = 1024**3
    # Job types that get their own `type` label in /metrics; later ones count as `other`.
    metrics_max_job_types: Annotated[int, Field(ge=1)] = 100

    @field_validator("webhook_retry_delays", mode="before")
    @classmethod
    def _webhook_delays(cls, value: object) -> object:
        return _split(value)

    @field_validator("api_keys", "worker_tokens", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split(value)

    @field_validator("worker_tokens")
    @classmethod
    def _token_entries(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_worker_token(entry)
        return value

    _keys: list[ApiKey] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _key_entries(self) -> HubSettings:
        # The file's entries join the list, so "keys are set" means the same everywhere.
        if self.api_keys_file is not None:
            try:
                extra = read_key_file(self.api_keys_file)
            except OSError as exc:
                raise ValueError(f"api_keys_file: cannot read it ({exc.strerror})") from None
            self.api_keys = [*self.api_keys, *extra]
            self.api_keys_file = None  # read once, even when the model is copied
        self._keys = parse_api_keys(self.api_keys)
        return self

    @property
    def api_key_entries(self) -> list[ApiKey]:
        """The configured API keys, parsed."""
        return self._keys


def default_worker_id() -> str:
    """Host name plus a random suffix."""
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"


class WorkerSettings(CommonSettings):
    """`empq worker`."""

    hub_url: str = "ws://127.0.0.1:3002"
    worker_id: str = Field(default_factory=default_worker_id)
    worker_token: str | None = None
    connectors: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["simulation"])
    worker_config: Path | None = None
    heartbeat_interval: Annotated[float, Field(gt=0)] = 20
    concurrent_jobs: Annotated[int, Field(ge=1, le=1024)] = 1
    #: How long a claim waits on the hub for a job (`claim_job.wait_seconds`, cut to the
    #: hub's `claim_wait_max`); 0 claims without waiting and relies on `job_available`.
    claim_wait: Annotated[float, Field(ge=0, le=3600)] = 20
    #: Where connectors not marked `shares_worker_loop` run: `own` gives each an event
    #: loop in a thread of its own (blocking code cannot stall heartbeats), `shared`
    #: runs every connector on the worker's loop (see `empq.worker.hosting`).
    connector_loop: Literal["own", "shared"] = "own"
    comfyui_url: str = "http://127.0.0.1:8188"
    a1111_url: str = "http://127.0.0.1:7860"
    simulation_duration: Annotated[float, Field(ge=0)] = 2.0
    simulation_steps: Annotated[int, Field(ge=1)] = 10
    simulation_failure_rate: Annotated[float, Field(ge=0, le=1)] = 0
    # Worker runtime (issue 4): the hub's REST base for artifact uploads (default: what
    # the hub announces, else the WebSocket host on port 3001), the optional status
    # HTTP port, and how long SIGTERM waits for running jobs before handing them back.
    hub_http_url: str | None = None
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    shutdown_grace: Annotated[float, Field(ge=0)] = 30

    @field_validator("connectors", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split(value)
