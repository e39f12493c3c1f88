"""An Automatic1111 (stable-diffusion-webui) API stand-in, as SERVICES.md describes it.

`/sdapi/v1/txt2img` and `img2img` block until the generation ends, one at a time;
`/sdapi/v1/progress` reports the running one; `/sdapi/v1/interrupt` makes the
blocking call return early; bad parameters get FastAPI's 422 `{"detail": [...]}`.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.serving import RunningServer

PNG = b"\x89PNG\r\n\x1a\n" + b"a1111-image"
STEP_SECONDS = 0.002
_INT_FIELDS = {"steps": (1, 150), "width": (64, 2048), "height": (64, 2048), "batch_size": (1, 8)}


@dataclass
class FakeA1111:
    """State and test hooks of one fake A1111 server."""

    interrupts: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    progress_polls: int = 0
    # Test hooks: reply 500 to the next N generations; hold each generation at step 1.
    fail_next: int = 0
    hold: asyncio.Event | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _step: int = 0
    _steps: int = 0
    _running: bool = False
    _interrupted: bool = False

    def reset(self) -> None:
        """Forget recorded calls and test hooks (a fresh server, same port)."""
        self.interrupts = 0
        self.requests.clear()
        self.progress_polls = 0
        self.fail_next = 0
        self.hold = None

    def _validate(self, body: Any, endpoint: str) -> list[dict[str, Any]]:
        if not isinstance(body, dict):
            return [
                {"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}
            ]
        errors = []
        for name, (lo, hi) in _INT_FIELDS.items():
            if name in body and (not isinstance(body[name], int) or not lo <= body[name] <= hi):
                errors.append(
                    {
                        "loc": ["body", name],
                        "msg": f"must be an integer in {lo}..{hi}",
                        "type": "value_error",
                    }
                )
        if "prompt" in body and not isinstance(body["prompt"], str):
            errors.append(
                {
                    "loc": ["body", "prompt"],
                    "msg": "Input should be a valid string",
                    "type": "string_type",
                }
            )
        if endpoint == "img2img" and not body.get("init_images"):
            errors.append(
                {"loc": ["body", "init_images"], "msg": "Field required", "type": "missing"}
            )
        return errors

    async def generate(self, request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        if endpoint not in ("txt2img", "img2img"):
            return JSONResponse({"detail": "Not Found"}, 404)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"detail": [{"loc": ["body"], "msg": "JSON decode error"}]}, 422)
        errors = self._validate(body, endpoint)
        if errors:
            return JSONResponse({"detail": errors}, 422)
        self.requests.append(body)
        if self.fail_next > 0:
            self.fail_next -= 1
            return JSONResponse(
                {"error": "RuntimeError", "detail": "", "body": "", "errors": "CUDA error"}, 500
            )
        async with self._lock:
            steps = int(body.get("steps", 20))
            self._running, self._interrupted, self._step, self._steps = True, False, 0, steps
            try:
                for i in range(1, steps + 1):
                    if self._interrupted:
                        break
                    await asyncio.sleep(STEP_SECONDS)
                    self._step = i
                    if i == 1 and self.hold is not None:
                        await self.hold.wait()
            finally:
                self._running = False
        count = int(body.get("batch_size", 1))
        images = [base64.b64encode(PNG + bytes([n])).decode() for n in range(count)]
        info = {
            "prompt": body.get("prompt", ""),
            "seed": body.get("seed", 1234),
            "steps_done": self._step,
        }
        return JSONResponse({"images": images, "parameters": body, "info": json.dumps(info)})

    async def progress(self, request: Request) -> Response:
        self.progress_polls += 1
        running = self._running
        frac = self._step / self._steps if running and self._steps else 0.0
        return JSONResponse(
            {
                "progress": frac,
                "eta_relative": 0.0 if not running else (self._steps - self._step) * STEP_SECONDS,
                "state": {
                    "skipped": False,
                    "interrupted": self._interrupted,
                    "job": "txt2img" if running else "",
                    "job_count": 1 if running else 0,
                    "job_timestamp": "20240101000000",
                    "job_no": 0,
                    "sampling_step": self._step if running else 0,
                    "sampling_steps": self._steps if running else 0,
                },
                "current_image": None,
                "textinfo": None,
            }
        )

    async def interrupt(self, request: Request) -> Response:
        self.interrupts += 1
        if self._running:
            self._interrupted = True
        return JSONResponse({})

    async def models(self, request: Request) -> Response:
        return JSONResponse(
            [
                {
                    "title": "sd15.safetensors [abc123]",
                    "model_name": "sd15",
                    "hash": "abc123",
                    "sha256": "0" * 64,
                    "filename": "/models/sd15.safetensors",
                    "config": None,
                },
                {
                    "title": "sdxl.safetensors [def456]",
                    "model_name": "sdxl",
                    "hash": "def456",
                    "sha256": "1" * 64,
                    "filename": "/models/sdxl.safetensors",
                    "config": None,
                },
            ]
        )

    async def options(self, request: Request) -> Response:
        return JSONResponse({"sd_model_checkpoint": "sd15.safetensors [abc123]"})

    def app(self) -> Starlette:
        """The ASGI app."""
        return Starlette(
            routes=[
                Route("/sdapi/v1/interrupt", self.interrupt, methods=["POST"]),
                Route("/sdapi/v1/{endpoint:str}", self.generate, methods=["POST"]),
                Route("/sdapi/v1/progress", self.progress),
                Route("/sdapi/v1/sd-models", self.models),
                Route("/sdapi/v1/options", self.options),
            ]
        )


@asynccontextmanager
async def running_a1111() -> AsyncIterator[tuple[FakeA1111, RunningServer]]:
    """A fake A1111 serving on a free port for one block."""
    fake = FakeA1111()
    server = RunningServer(fake.app())
    await server.start()
    try:
        yield fake, server
    finally:
        await server.stop()
