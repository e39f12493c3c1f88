"""`rest_sync` and `rest_async`: any HTTP service, one call or submit-then-poll.

`rest_sync` payload: `url`, `method` (POST), `headers`, `body` (sent as JSON),
`timeout` (s). Result: `{"status_code", "response", "output_files": []}`.

`rest_async` payload: the same to submit, then polls a status URL: `status_url`
(a template with `{id}`; default: the reply's `status_url` field or `Location`
header), `id_field` (`id`), `poll_interval` (1 s), `status_field` (`status`),
`progress_field` (`progress`, 0..100), `result_field` (the whole status reply when
unset), `cancel_url` (template; POSTed on cancel). Done when the status is one of
`completed, succeeded, success, done, finished`; failed on `failed, error,
cancelled, canceled`. Result: `{"id", "response", "output_files": []}`.

With `EMPQ_REST_BASE_URL` set, `url`s are paths under it and other hosts are refused,
so a job payload cannot point the worker at arbitrary addresses.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from empq import telemetry
from empq.config import WorkerSettings
from empq.connectors import _http
from empq.connectors.base import (
    Connector,
    JobContext,
    ProgressReporter,
    invalid_payload,
    payload_errors,
)
from empq.errors import ConnectorError

log = logging.getLogger(__name__)
DONE = frozenset({"completed", "succeeded", "success", "done", "finished"})
FAILED = frozenset({"failed", "error", "cancelled", "canceled"})


class RestSettings(BaseSettings):
    """`EMPQ_REST_BASE_URL`: when set, job URLs must live under it."""

    model_config = SettingsConfigDict(env_prefix="EMPQ_REST_", extra="ignore")

    base_url: str | None = None


class RestCall(BaseModel):
    """The request a `rest_sync` job makes (and a `rest_async` job submits with)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    timeout: Annotated[float, Field(gt=0, le=24 * 3600)] | None = None


class RestAsyncCall(RestCall):
    """A `rest_async` job: submit, then poll until the remote job ends."""

    status_url: str | None = None
    id_field: str = "id"
    poll_interval: Annotated[float, Field(gt=0, le=3600)] = 1.0
    status_field: str = "status"
    progress_field: str = "progress"
    result_field: str | None = None
    cancel_url: str | None = None


class _RestBase(Connector):
    shares_worker_loop = True  # async throughout, never blocks

    def __init__(self, settings: WorkerSettings | None = None) -> None:
        super().__init__(settings)
        self.base_url = RestSettings().base_url
        self._client: httpx.AsyncClient | None = None
        self._cancel_urls: dict[str, str] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=30.0, transport=telemetry.http_transport())
        return self._client

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def resolve(self, job: JobContext, url: str) -> str:
        """An absolute URL for `url`, refusing hosts outside `EMPQ_REST_BASE_URL`."""
        if self.base_url is None:
            if urlsplit(url).scheme not in ("http", "https"):
                raise invalid_payload(job, f"url {url!r} must be an absolute http(s) URL")
            return url
        full = urljoin(self.base_url.rstrip("/") + "/", url.lstrip("/"))
        if urlsplit(full).netloc != urlsplit(self.base_url).netloc:
            raise invalid_payload(job, f"url {url!r} is outside EMPQ_REST_BASE_URL")
        return full

    async def call(self, job: JobContext, spec: RestCall) -> httpx.Response:
        response = await _http.request(
            self.client,
            self.name,
            spec.method,
            self.resolve(job, spec.url),
            headers=spec.headers,
            json=spec.body,
            timeout=spec.timeout or job.timeout_seconds,
        )
        if not response.is_success:
            raise _http.status_error(self.name, response)
        return response


class RestSyncConnector(_RestBase):
    """One HTTP call per job; its reply is the result."""

    name = "rest_sync"
    services = ("rest_sync",)

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        """Make the call and return the reply."""
        try:
            spec = RestCall.model_validate(job.payload)
        except ValidationError as exc:
            raise invalid_payload(job, "bad rest_sync request", payload_errors(exc)) from exc
        response = await self.call(job, spec)
        return {
            "status_code": response.status_code,
            "response": _http.body_of(response),
            "output_files": [],
        }


class RestAsyncConnector(_RestBase):
    """Submit a job to an HTTP service, then poll its status URL until it ends."""

    name = "rest_async"
    services = ("rest_async",)

    async def cancel(self, job: JobContext) -> None:
        """POST the job's `cancel_url`, if it has one."""
        url = self._cancel_urls.get(job.id)
        if url is not None:
            try:
                await self.client.post(url)
            except httpx.HTTPError as exc:
                log.warning("rest_async cancel of job %s failed: %s", job.id, exc)

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        """Submit, poll, and return the final status reply (or its `result_field`)."""
        try:
            spec = RestAsyncCall.model_validate(job.payload)
        except ValidationError as exc:
            raise invalid_payload(job, "bad rest_async request", payload_errors(exc)) from exc
        response = await self.call(job, spec)
        reply = _http.body_of(response)
        remote_id = str(reply.get(spec.id_field, "")) if isinstance(reply, dict) else ""
        status_url = self._status_url(job, spec, response, reply, remote_id)
        if spec.cancel_url:
            self._cancel_urls[job.id] = self.resolve(job, spec.cancel_url.format(id=remote_id))
        try:
            async with asyncio.timeout(job.timeout_seconds):
                final = await self._poll(spec, status_url, progress)
        except TimeoutError as exc:
            await self.cancel(job)
            raise ConnectorError(
                f"job {job.id}: remote job {remote_id} still running after "
                f"{job.timeout_seconds:g} s",
                error_type="timeout",
                retryable=True,
            ) from exc
        finally:
            self._cancel_urls.pop(job.id, None)
        value = final.get(spec.result_field) if spec.result_field else final
        return {"id": remote_id, "response": value, "output_files": []}

    def _status_url(
        self,
        job: JobContext,
        spec: RestAsyncCall,
        response: httpx.Response,
        reply: Any,
        remote_id: str,
    ) -> str:
        if spec.status_url:
            if "{id}" in spec.status_url and not remote_id:
                raise _http.invalid_response(self.name, f"submit reply has no {spec.id_field!r}")
            return self.resolve(job, spec.status_url.format(id=remote_id))
        given = reply.get("status_url") if isinstance(reply, dict) else None
        given = given or response.headers.get("location")
        if not given:
            raise _http.invalid_response(
                self.name, "submit reply names no status URL (status_url field or Location)"
            )
        return self.resolve(job, urljoin(str(response.url), str(given)))

    async def _poll(
        self, spec: RestAsyncCall, url: str, progress: ProgressReporter
    ) -> dict[str, Any]:
        reported = -1.0
        while True:
            state = await _http.json_request(
                self.client, self.name, "GET", url, headers=spec.headers
            )
            if not isinstance(state, dict):
                raise _http.invalid_response(self.name, "status reply is not a JSON object", state)
            status = str(state.get(spec.status_field, "")).lower()
            if status in DONE:
                return state
            if status in FAILED:
                message = state.get("error") or state.get("message") or status
                raise ConnectorError(
                    f"remote job ended {status}: {message}",
                    error_type="remote_failed",
                    retryable=False,
                    details=state,
                )
            value = state.get(spec.progress_field)
            if isinstance(value, int | float) and value > reported:
                reported = float(value)
                await progress(min(99.0, reported), state.get("message"))
            await asyncio.sleep(spec.poll_interval)
