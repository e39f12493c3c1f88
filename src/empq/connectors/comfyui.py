"""`comfyui`: run a workflow graph on ComfyUI through its own HTTP + WebSocket API.

Flow (SERVICES.md): open `/ws?clientId=<id>` first, `POST /prompt` with that client id
and our own `prompt_id`, follow that prompt's frames (progress from `progress_state`
and `progress`, failure from `execution_error`, end at `executing {node: null}`),
then read `/history/{id}` as the source of truth and copy every saved image from
`/view` into the hub's artifact store. A dropped socket is reopened with the same
client id and the end state confirmed from `/history`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

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
from empq.connectors.comfyui_models import workflow_models
from empq.connectors.comfyui_progress import PromptTracker
from empq.connectors.service_errors import comfyui_node_errors
from empq.errors import ConnectorError

log = logging.getLogger(__name__)
SERVICE = "ComfyUI"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class ComfyNode(BaseModel):
    """One node of a workflow in ComfyUI's API format."""

    model_config = ConfigDict(extra="allow")

    class_type: str = Field(min_length=1)
    inputs: dict[str, Any] = Field(default_factory=dict)


class ComfyUIPayload(BaseModel):
    """A `comfyui` job's payload: `workflow` is `{node_id: {class_type, inputs}}`."""

    model_config = ConfigDict(extra="ignore")

    workflow: dict[str, ComfyNode] = Field(min_length=1)


#: Seconds to wait for ComfyUI's side of the WebSocket close handshake.
CLOSE_TIMEOUT = 1.0


class ComfyUIConnector(Connector):
    """Runs `payload.workflow` on the ComfyUI at `EMPQ_COMFYUI_URL`."""

    shares_worker_loop = True  # async throughout, never blocks
    name = "comfyui"
    services = ("comfyui",)

    def __init__(
        self,
        settings: WorkerSettings | None = None,
        *,
        url: str | None = None,
        request_timeout: float = 30.0,
        history_poll: float = 5.0,
        reconnect_attempts: int = 5,
    ) -> None:
        super().__init__(settings)
        self.url = (url or self.settings.comfyui_url).rstrip("/")
        self.request_timeout = request_timeout
        self.history_poll = history_poll
        self.reconnect_attempts = reconnect_attempts
        self._client: httpx.AsyncClient | None = None
        self._prompts: dict[str, str] = {}
        self._node_classes: frozenset[str] | None = None

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

    # ------------------------------------------------------------------ port methods
    async def health(self) -> ConnectorHealth:
        """Healthy when `/system_stats` answers; reports its devices."""
        try:
            stats = await _http.json_request(self.client, SERVICE, "GET", "/system_stats")
        except ConnectorError as exc:
            return ConnectorHealth(healthy=False, detail=exc.message)
        devices = stats.get("devices", []) if isinstance(stats, dict) else []
        return ConnectorHealth(healthy=True, info={"url": self.url, "devices": devices})

    async def capabilities(self) -> CapabilityAdditions:
        """`comfyui`, its checkpoints as models, and the largest device's memory."""
        add = CapabilityAdditions(services=["comfyui"])
        try:
            info = await _http.json_request(self.client, SERVICE, "GET", "/object_info")
            stats = await _http.json_request(self.client, SERVICE, "GET", "/system_stats")
        except ConnectorError as exc:
            log.warning("ComfyUI capabilities unavailable: %s", exc.message)
            return add
        if isinstance(info, dict):
            self._node_classes = frozenset(info)
            add.models["comfyui"] = _checkpoints(info)
        devices = stats.get("devices", []) if isinstance(stats, dict) else []
        gpus = [d for d in devices if isinstance(d, dict) and d.get("type") != "cpu"]
        if gpus:
            best = max(gpus, key=lambda d: float(d.get("vram_total") or 0))
            add.gpu_memory_gb = round(float(best.get("vram_total") or 0) / 2**30, 1)
            add.gpu_model = str(best.get("name") or "") or None
        return add

    async def cancel(self, job: JobContext) -> None:
        """Drop the prompt if still queued, and interrupt it if it runs."""
        prompt_id = self._prompts.get(job.id)
        if prompt_id is not None:
            await self._abort(prompt_id)

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        """Run the job's workflow and return its outputs (see the module docstring)."""
        try:
            workflow = ComfyUIPayload.model_validate(job.payload).workflow
        except ValidationError as exc:
            raise invalid_payload(job, "bad ComfyUI workflow", payload_errors(exc)) from exc
        if self._node_classes is not None:
            unknown = sorted({n.class_type for n in workflow.values()} - self._node_classes)
            if unknown:
                raise invalid_payload(job, f"ComfyUI has no node class {', '.join(unknown)}")
        client_id = uuid.uuid4().hex
        prompt_id = str(uuid.uuid4())
        self._prompts[job.id] = prompt_id
        try:
            async with asyncio.timeout(job.timeout_seconds):
                ws = await self._open_socket(client_id)
                try:
                    await self._submit(job, workflow, client_id, prompt_id)
                    job.mark_started()
                    tracker = PromptTracker(prompt_id, len(workflow), progress)
                    await self._follow(ws, client_id, tracker)
                finally:
                    await ws.close()
                entry = await self._history(prompt_id, wait=True)
                assert entry is not None  # wait=True raises instead of returning None
                result = await self._collect(job, prompt_id, entry)
                # The models it loaded stay warm in ComfyUI: jobs needing them come here.
                self.note_models(
                    "comfyui", workflow_models((n.class_type, n.inputs) for n in workflow.values())
                )
                return result
        except TimeoutError as exc:
            await self._abort(prompt_id)
            raise ConnectorError(
                f"job {job.id}: ComfyUI did not finish within {job.timeout_seconds:g} s",
                error_type="timeout",
                retryable=True,
            ) from exc
        finally:
            self._prompts.pop(job.id, None)

    # ------------------------------------------------------------------ steps
    async def _open_socket(self, client_id: str) -> ClientConnection:
        ws_url = re.sub(r"^http", "ws", self.url) + f"/ws?clientId={client_id}"
        try:
            # A ComfyUI that never answers our close must not hold the job's outcome
            # for websockets' default 10 s.
            return await connect(
                ws_url,
                max_size=64 * 2**20,
                open_timeout=self.request_timeout,
                close_timeout=CLOSE_TIMEOUT,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ConnectorError(
                f"ComfyUI WebSocket unreachable at {ws_url}: {exc}",
                error_type="service_unavailable",
                retryable=True,
            ) from exc

    async def _submit(
        self, job: JobContext, workflow: dict[str, ComfyNode], client_id: str, prompt_id: str
    ) -> None:
        body = {
            "prompt": {nid: n.model_dump(exclude_none=True) for nid, n in workflow.items()},
            "client_id": client_id,
            "prompt_id": prompt_id,
            "extra_data": {"empq_job_id": job.id},
        }
        response = await _http.request(self.client, SERVICE, "POST", "/prompt", json=body)
        if response.status_code == 400:
            reply = _http.body_of(response)
            error = reply.get("error", {}) if isinstance(reply, dict) else {}
            kind = error.get("type", "invalid_prompt") if isinstance(error, dict) else "?"
            text = error.get("message", "") if isinstance(error, dict) else str(error)
            nodes = comfyui_node_errors(
                reply.get("node_errors") if isinstance(reply, dict) else None
            )
            raise invalid_payload(
                job, f"ComfyUI refused the workflow: {nodes or f'{kind}: {text}'}", reply
            )
        if not response.is_success:
            raise _http.status_error(SERVICE, response)
        reply = _http.body_of(response)
        if not isinstance(reply, dict) or "prompt_id" not in reply:
            raise _http.invalid_response(SERVICE, "POST /prompt without prompt_id", reply)
        if reply.get("node_errors"):
            # ComfyUI runs the valid branches anyway; the job as asked cannot succeed.
            await self._abort(prompt_id)
            nodes = comfyui_node_errors(reply["node_errors"])
            raise invalid_payload(
                job, f"ComfyUI rejected some outputs of the workflow: {nodes}", reply["node_errors"]
            )

    async def _follow(self, ws: ClientConnection, client_id: str, tracker: PromptTracker) -> None:
        """Read frames until the prompt ends; reopen a dropped socket and ask `/history`."""
        while True:
            try:
                while not tracker.done:
                    try:
                        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the
                        # cancellation that enforces the job's own time limit.
                        async with asyncio.timeout(self.history_poll):
                            frame = await ws.recv()
                    except TimeoutError:
                        # Quiet for a while: a missed frame must not hang the job.
                        if await self._finished(tracker):
                            return
                        continue
                    if isinstance(frame, str):
                        await tracker.handle(_decode(frame))
                return
            except ConnectionClosed:
                log.info("ComfyUI socket dropped during prompt %s; reopening", tracker.prompt_id)
                await ws.close()
                ws = await self._reopen(client_id)
                if await self._finished(tracker):
                    await ws.close()
                    return

    async def _reopen(self, client_id: str) -> ClientConnection:
        delay = 0.05
        for attempt in range(self.reconnect_attempts):
            try:
                return await self._open_socket(client_id)
            except ConnectorError:
                if attempt == self.reconnect_attempts - 1:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    async def _finished(self, tracker: PromptTracker) -> bool:
        entry = await self._history(tracker.prompt_id, wait=False)
        if entry is None or not entry.get("status", {}).get("status_str"):
            return False
        tracker.done = True
        return True

    async def _history(self, prompt_id: str, *, wait: bool) -> dict[str, Any] | None:
        delay = 0.01
        for _ in range(8 if wait else 1):
            reply = await _http.json_request(self.client, SERVICE, "GET", f"/history/{prompt_id}")
            if isinstance(reply, dict) and isinstance(reply.get(prompt_id), dict):
                entry: dict[str, Any] = reply[prompt_id]
                return entry
            if wait:
                await asyncio.sleep(delay)
                delay *= 2
        if wait:
            raise _http.invalid_response(SERVICE, f"no history for finished prompt {prompt_id}")
        return None

    async def _collect(
        self, job: JobContext, prompt_id: str, entry: dict[str, Any]
    ) -> dict[str, Any]:
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            raise _failure_from_history(prompt_id, status.get("messages") or [])
        outputs = entry.get("outputs") or {}
        files: list[str] = []
        for node_id, out in outputs.items():
            for image in (out or {}).get("images", []) or []:
                if not isinstance(image, dict) or image.get("type", "output") != "output":
                    continue
                params = {
                    "filename": str(image.get("filename", "")),
                    "subfolder": str(image.get("subfolder", "")),
                    "type": "output",
                }
                response = await _http.request(self.client, SERVICE, "GET", "/view", params=params)
                if not response.is_success:
                    raise _http.status_error(SERVICE, response)
                name = _SAFE_NAME.sub("_", f"{node_id}-{params['filename']}").strip("._")
                ctype = response.headers.get("content-type", "application/octet-stream")
                files.append(await job.artifacts.save(name, response.content, ctype))
        return {"prompt_id": prompt_id, "outputs": outputs, "output_files": files}

    async def _abort(self, prompt_id: str) -> None:
        """Best effort: remove from the queue, then interrupt if running."""
        for path, body in (
            ("/queue", {"delete": [prompt_id]}),
            ("/interrupt", {"prompt_id": prompt_id}),
        ):
            try:
                await self.client.post(path, json=body)
            except httpx.HTTPError as exc:
                log.warning("ComfyUI %s for prompt %s failed: %s", path, prompt_id, exc)


def _decode(frame: str) -> dict[str, Any]:
    try:
        data = json.loads(frame)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _checkpoints(info: dict[str, Any]) -> list[str]:
    try:
        names = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    except (KeyError, IndexError, TypeError):
        return []
    return [str(n) for n in names] if isinstance(names, list) else []


def _failure_from_history(prompt_id: str, messages: list[Any]) -> ConnectorError:
    for item in messages:
        if isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict):
            if item[0] == "execution_error":
                return PromptTracker.execution_error(item[1])
            if item[0] == "execution_interrupted":
                return PromptTracker.interrupted(item[1])
    return ConnectorError(
        f"ComfyUI prompt {prompt_id} ended with an error",
        error_type="execution_error",
        retryable=False,
    )
