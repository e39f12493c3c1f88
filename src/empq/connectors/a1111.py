"""`a1111`: txt2img / img2img on an Automatic1111 (stable-diffusion-webui) API.

The generation call blocks until the image is done, so progress comes from polling
`/sdapi/v1/progress` *while* that call is in flight. A1111 runs one generation at a
time and its progress endpoint is global, so this connector sends one generation at
a time too: progress then always belongs to the job that asked for it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from empq import telemetry
from empq.config import WorkerSettings
from empq.connectors import _http
from empq.connectors.base import (
    CapabilityAdditions,
    Connector,
    ConnectorHealth,
    JobContext,
    ProgressReporter,
    invalid_payload,
    payload_errors,
)
from empq.connectors.service_errors import fastapi_422
from empq.errors import ConnectorError

log = logging.getLogger(__name__)
SERVICE = "Automatic1111"


class A1111Payload(BaseModel):
    """The generation parameters of `/sdapi/v1/txt2img` (or img2img), plus `endpoint`."""

    model_config = ConfigDict(extra="allow")

    endpoint: Literal["txt2img", "img2img"] = "txt2img"

    @model_validator(mode="after")
    def _img2img_needs_images(self) -> A1111Payload:
        extra = self.model_extra or {}
        if self.endpoint == "img2img" and not extra.get("init_images"):
            raise ValueError("img2img needs a non-empty 'init_images' list")
        return self

    def parameters(self) -> dict[str, Any]:
        """What A1111 gets: everything but `endpoint`."""
        return dict(self.model_extra or {})


class A1111Connector(Connector):
    """Generates images on the A1111 at `EMPQ_A1111_URL`; outputs go to the artifact store."""

    shares_worker_loop = True  # async throughout, never blocks
    name = "a1111"
    services = ("a1111",)

    def __init__(
        self,
        settings: WorkerSettings | None = None,
        *,
        url: str | None = None,
        request_timeout: float = 30.0,
        poll_interval: float = 0.5,
    ) -> None:
        super().__init__(settings)
        self.url = (url or self.settings.a1111_url).rstrip("/")
        self.request_timeout = request_timeout
        self.poll_interval = poll_interval
        self._client: httpx.AsyncClient | None = None
        self._one_at_a_time = asyncio.Lock()
        self._running: str | None = None
        #: Checkpoint title -> model_name, from `/sdapi/v1/sd-models`.
        self._titles: dict[str, str] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.url,
                timeout=self.request_timeout,
                transport=telemetry.http_transport(),
            )
        return self._client

    async def start(self) -> None:
        """Open the HTTP client."""
        _ = self.client

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def health(self) -> ConnectorHealth:
        """Healthy when `/sdapi/v1/options` answers; reports the loaded checkpoint."""
        try:
            options = await _http.json_request(self.client, SERVICE, "GET", "/sdapi/v1/options")
        except ConnectorError as exc:
            return ConnectorHealth(healthy=False, detail=exc.message)
        model = options.get("sd_model_checkpoint") if isinstance(options, dict) else None
        if isinstance(model, str):
            self.note_models("a1111", [self._model_name(model)])
        return ConnectorHealth(healthy=True, info={"url": self.url, "checkpoint": model})

    def _model_name(self, title: str) -> str:
        """A checkpoint's `model_name` (how capabilities list it) from its title."""
        if title in self._titles:
            return self._titles[title]
        base = title.split(" [", 1)[0].rsplit("/", 1)[-1]
        return base.rsplit(".", 1)[0] if "." in base else base

    async def _note_checkpoint(self, payload: A1111Payload) -> None:
        """After a generation, the checkpoint it used is warm (`models_loaded`)."""
        override = payload.parameters().get("override_settings") or {}
        model = override.get("sd_model_checkpoint") if isinstance(override, dict) else None
        if not isinstance(model, str):
            try:
                options = await _http.json_request(self.client, SERVICE, "GET", "/sdapi/v1/options")
            except ConnectorError:
                return
            model = options.get("sd_model_checkpoint") if isinstance(options, dict) else None
        if isinstance(model, str) and model:
            self.note_models("a1111", [self._model_name(model)])

    async def capabilities(self) -> CapabilityAdditions:
        """`a1111` and its checkpoints (by `model_name`) as models."""
        add = CapabilityAdditions(services=["a1111"])
        try:
            models = await _http.json_request(self.client, SERVICE, "GET", "/sdapi/v1/sd-models")
        except ConnectorError as exc:
            log.warning("A1111 models unavailable: %s", exc.message)
            return add
        if isinstance(models, list):
            add.models["a1111"] = [
                str(m.get("model_name") or m.get("title"))
                for m in models
                if isinstance(m, dict) and (m.get("model_name") or m.get("title"))
            ]
            self._titles = {
                str(m["title"]): str(m["model_name"])
                for m in models
                if isinstance(m, dict) and m.get("title") and m.get("model_name")
            }
        return add

    async def cancel(self, job: JobContext) -> None:
        """Interrupt the generation if it is this job's (the blocking call then returns)."""
        if self._running == job.id:
            await self._interrupt()

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        """Generate, reporting progress from `/sdapi/v1/progress`, and upload the images."""
        try:
            payload = A1111Payload.model_validate(job.payload)
        except ValidationError as exc:
            raise invalid_payload(job, "bad A1111 parameters", payload_errors(exc)) from exc
        async with self._one_at_a_time:
            self._running = job.id
            try:
                async with asyncio.timeout(job.timeout_seconds):
                    response = await self._generate(job, payload, progress, job.timeout_seconds)
            except TimeoutError as exc:
                await self._interrupt()
                raise ConnectorError(
                    f"job {job.id}: A1111 did not finish within {job.timeout_seconds:g} s",
                    error_type="timeout",
                    retryable=True,
                ) from exc
            finally:
                self._running = None
        if response.status_code == 422:
            body = _http.body_of(response)
            listed = fastapi_422(body)
            problem = (
                f"A1111 refused the parameters: {listed}"
                if listed
                else "A1111 refused the parameters"
            )
            raise invalid_payload(job, problem, body)
        if not response.is_success:
            raise _http.status_error(SERVICE, response)
        result = await self._result(job, response)
        await self._note_checkpoint(payload)
        return result

    async def _generate(
        self, job: JobContext, payload: A1111Payload, progress: ProgressReporter, limit: float
    ) -> httpx.Response:
        call = asyncio.create_task(
            _http.request(
                self.client,
                SERVICE,
                "POST",
                f"/sdapi/v1/{payload.endpoint}",
                json=payload.parameters(),
                timeout=limit,
            )
        )
        try:
            reported = 0.0
            while True:
                done, _ = await asyncio.wait({call}, timeout=self.poll_interval)
                if done:
                    return call.result()
                # A refused connection fails the call at once; one still open after a
                # poll interval reached A1111, which is generating.
                job.mark_started()
                reported = await self._poll(progress, reported)
        finally:
            if not call.done():
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectorError):
                    await call

    async def _poll(self, progress: ProgressReporter, reported: float) -> float:
        try:
            state = await _http.json_request(self.client, SERVICE, "GET", "/sdapi/v1/progress")
        except ConnectorError as exc:
            # The generation call decides the outcome; a missed poll only delays progress.
            log.debug("A1111 progress poll failed: %s", exc.message)
            return reported
        if not isinstance(state, dict):
            return reported
        try:
            value = min(99.0, 100 * float(state.get("progress") or 0))
        except (TypeError, ValueError):
            return reported
        if value > reported:
            s = state.get("state") if isinstance(state.get("state"), dict) else {}
            assert isinstance(s, dict)
            step, total = s.get("sampling_step"), s.get("sampling_steps")
            message = f"step {step}/{total}" if step is not None and total else None
            await progress(value, message, current_step=step, total_steps=total or None)
            return value
        return reported

    async def _result(self, job: JobContext, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise _http.invalid_response(SERVICE, "generation reply is not JSON") from exc
        images = body.get("images") if isinstance(body, dict) else None
        if not isinstance(images, list):
            raise _http.invalid_response(SERVICE, "generation reply has no 'images' list")
        files = []
        for index, image in enumerate(images):
            try:
                data = base64.b64decode(str(image).split(",", 1)[-1], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise _http.invalid_response(SERVICE, f"image {index} is not base64") from exc
            files.append(await job.artifacts.save(f"image-{index}.png", data, "image/png"))
        info: Any = body.get("info")
        if isinstance(info, str):
            with contextlib.suppress(ValueError):
                info = json.loads(info)
        return {"output_files": files, "parameters": body.get("parameters") or {}, "info": info}

    async def _interrupt(self) -> None:
        try:
            await self.client.post("/sdapi/v1/interrupt")
        except httpx.HTTPError as exc:
            log.warning("A1111 interrupt failed: %s", exc)
