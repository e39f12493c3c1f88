"""A ComfyUI stand-in that behaves as SERVICES.md describes, gotchas included.

Real HTTP + WebSocket (Starlette under uvicorn). Nodes are model-free:
`EmptyImage` -> image, `Sampler` (ticks `steps` progress bars, sends binary previews,
checks interrupts at each tick), `SlowNode` (runs `seconds` without ticking, so an
interrupt waits for it to end), `FailNode` (raises), `SaveImage` / `PreviewImage`
(outputs). Per-prompt frames go only to the socket of the prompt's `client_id`.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes.comfyui_graph import (
    NODES,
    error_entry,
    execution_order,
    object_info,
    system_stats,
    validate_tree,
)
from tests.fakes.serving import RunningServer

PNG = b"\x89PNG\r\n\x1a\n" + b"fake-png-body"
STEP_SECONDS = 0.002


def _refusal(etype: str, message: str) -> Response:
    return JSONResponse({"error": error_entry(etype, message), "node_errors": {}}, 400)


@dataclass
class Prompt:
    prompt_id: str
    number: int
    graph: dict[str, Any]
    client_id: str | None
    outputs_to_run: list[str]


@dataclass
class FakeComfyUI:
    """State and test hooks of one fake ComfyUI server."""

    sockets: dict[str, WebSocket] = field(default_factory=dict)
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    pending: list[Prompt] = field(default_factory=list)
    interrupts: list[dict[str, Any] | None] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    running: str | None = None
    counter: int = 0
    _interrupt_flag: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Set by tests: the runner waits on it before executing each prompt.
    hold: asyncio.Event | None = None
    executing_started: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self) -> None:
        """Forget every prompt, file and recorded call (a fresh server, same port)."""
        self.history.clear()
        self.files.clear()
        self.pending.clear()
        self.interrupts.clear()
        self.deleted.clear()
        self.cache.clear()
        self.counter = 0
        self.hold = None
        self._interrupt_flag = False

    # -------------------------------------------------------------- websocket
    async def send(self, client_id: str | None, mtype: str, data: dict[str, Any]) -> None:
        ws = self.sockets.get(client_id) if client_id else None
        if ws is not None:
            try:
                await ws.send_text(json.dumps({"type": mtype, "data": data}))
            except (RuntimeError, WebSocketDisconnect, OSError):
                self.sockets.pop(client_id or "", None)

    async def broadcast(self, mtype: str, data: dict[str, Any]) -> None:
        for cid in list(self.sockets):
            await self.send(cid, mtype, data)

    async def drop_sockets(self) -> None:
        """Close every WebSocket (a network blip); the server keeps running."""
        for ws in list(self.sockets.values()):
            with suppress(RuntimeError):
                await ws.close(1001)
        self.sockets.clear()

    # -------------------------------------------------------------- validation
    async def post_prompt(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("500: Internal Server Error", status_code=500)
        graph = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(graph, dict):
            return _refusal("no_prompt", "No prompt provided")
        for nid, node in graph.items():
            if not isinstance(node, dict) or "class_type" not in node:
                msg = (
                    "Cannot execute because a node is missing the class_type property.: "
                    f"Node ID '#{nid}'"
                )
                return _refusal("invalid_prompt", msg)
            if node["class_type"] not in NODES:
                msg = f"Cannot execute because node {node['class_type']} does not exist."
                return _refusal("invalid_prompt", msg)
        outputs = [nid for nid, n in graph.items() if NODES[n["class_type"]][1]]
        if not outputs:
            return _refusal("prompt_no_outputs", "Prompt has no outputs")
        node_errors: dict[str, Any] = {}
        good: list[str] = []
        for nid in outputs:
            faults = validate_tree(graph, nid)
            for at, errors in faults.items():
                entry = node_errors.setdefault(
                    at,
                    {
                        "errors": errors,
                        "dependent_outputs": [],
                        "class_type": graph[at]["class_type"],
                    },
                )
                entry["dependent_outputs"].append(nid)
            if not faults:
                good.append(nid)
        if not good:
            return JSONResponse(
                {
                    "error": error_entry(
                        "prompt_outputs_failed_validation", "Prompt outputs failed validation"
                    ),
                    "node_errors": node_errors,
                },
                400,
            )
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        self.counter += 1
        self.pending.append(Prompt(prompt_id, self.counter, graph, body.get("client_id"), good))
        self._wake.set()
        return JSONResponse(
            {"prompt_id": prompt_id, "number": self.counter, "node_errors": node_errors}
        )

    # -------------------------------------------------------------- execution
    async def run_forever(self) -> None:
        while True:
            while not self.pending:
                self._wake.clear()
                await self._wake.wait()
            prompt = self.pending.pop(0)
            if self.hold is not None:
                await self.hold.wait()
            self.running = prompt.prompt_id
            self._interrupt_flag = False
            try:
                await self._execute(prompt)
            finally:
                self.running = None

    async def _execute(self, p: Prompt) -> None:
        pid, cid = p.prompt_id, p.client_id
        order = execution_order(p.graph, p.outputs_to_run)
        messages: list[list[Any]] = []

        async def event(mtype: str, data: dict[str, Any]) -> None:
            messages.append([mtype, data])
            await self.send(cid, mtype, data)

        await event("execution_start", {"prompt_id": pid, "timestamp": int(time.time() * 1000)})
        key = json.dumps({n: p.graph[n] for n in order}, sort_keys=True)
        cached = self.cache.get(key)
        await event("execution_cached", {"nodes": order if cached else [], "prompt_id": pid})
        outputs: dict[str, Any] = {}
        states = {n: {"value": 0, "max": 1, "state": "pending"} for n in order}
        if cached is not None:
            for nid, out in cached.items():
                await self.send(
                    cid,
                    "executed",
                    {"node": nid, "display_node": nid, "output": out, "prompt_id": pid},
                )
            outputs = cached
        else:
            for nid in order:
                if self._interrupt_flag:
                    await self._interrupted(p, nid, messages)
                    return
                ctype = p.graph[nid]["class_type"]
                inputs = p.graph[nid].get("inputs") or {}
                await event("executing", {"node": nid, "display_node": nid, "prompt_id": pid})
                states[nid]["state"] = "running"
                await self.send(cid, "progress_state", {"prompt_id": pid, "nodes": states})
                if ctype == "Sampler":
                    steps = int(inputs["steps"])
                    states[nid]["max"] = steps
                    for i in range(1, steps + 1):
                        await asyncio.sleep(STEP_SECONDS)
                        if self._interrupt_flag:
                            await self._interrupted(p, nid, messages)
                            return
                        states[nid]["value"] = i
                        data = {"value": i, "max": steps, "prompt_id": pid, "node": nid}
                        await self.send(cid, "progress", data)
                        await self.send(cid, "progress_state", {"prompt_id": pid, "nodes": states})
                        ws = self.sockets.get(cid or "")
                        if ws is not None:
                            with suppress(RuntimeError, OSError):
                                await ws.send_bytes(struct.pack(">II", 1, 2) + PNG)
                elif ctype == "SlowNode":
                    await asyncio.sleep(float(inputs["seconds"]))  # ignores interrupts
                elif ctype == "FailNode":
                    data = {
                        "prompt_id": pid,
                        "node_id": nid,
                        "node_type": ctype,
                        "executed": [],
                        "exception_message": "boom: node failed",
                        "exception_type": "RuntimeError",
                        "traceback": ["Traceback ..."],
                        "current_inputs": {},
                        "current_outputs": {},
                    }
                    await event("execution_error", data)
                    self._record(p, {}, "error", messages)
                    return
                elif ctype in ("SaveImage", "PreviewImage"):
                    kind = "output" if ctype == "SaveImage" else "temp"
                    prefix = str(inputs.get("filename_prefix", "ComfyUI"))
                    fname = f"{prefix}_{self.counter:05}_.png"
                    self.files[(kind, fname)] = PNG + pid.encode()
                    out = {"images": [{"filename": fname, "subfolder": "", "type": kind}]}
                    outputs[nid] = out
                    await self.send(
                        cid,
                        "executed",
                        {"node": nid, "display_node": nid, "output": out, "prompt_id": pid},
                    )
                states[nid] = {
                    "value": states[nid]["max"],
                    "max": states[nid]["max"],
                    "state": "finished",
                }
                await self.send(cid, "progress_state", {"prompt_id": pid, "nodes": states})
            self.cache[key] = outputs
        await event("execution_success", {"prompt_id": pid, "timestamp": int(time.time() * 1000)})
        self._record(p, outputs, "success", messages)
        await self.send(cid, "executing", {"node": None, "display_node": None, "prompt_id": pid})

    async def _interrupted(self, p: Prompt, nid: str, messages: list[list[Any]]) -> None:
        data = {
            "prompt_id": p.prompt_id,
            "node_id": nid,
            "node_type": p.graph[nid]["class_type"],
            "executed": [],
        }
        messages.append(["execution_interrupted", data])
        await self.broadcast("execution_interrupted", data)
        self._record(p, {}, "error", messages)

    def _record(
        self, p: Prompt, outputs: dict[str, Any], status: str, messages: list[list[Any]]
    ) -> None:
        self.history[p.prompt_id] = {
            "prompt": [
                p.number,
                p.prompt_id,
                p.graph,
                {"client_id": p.client_id},
                p.outputs_to_run,
            ],
            "outputs": outputs,
            "status": {
                "status_str": status,
                "completed": status == "success",
                "messages": messages,
            },
            "meta": {},
        }

    # -------------------------------------------------------------- other routes
    async def interrupt(self, request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw) if raw.strip() else None
        self.interrupts.append(body)
        target = body.get("prompt_id") if isinstance(body, dict) else None
        if self.running is not None and (target is None or target == self.running):
            self._interrupt_flag = True
        return Response(status_code=200)

    async def queue(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(
                {
                    "queue_running": [[0, self.running]] if self.running else [],
                    "queue_pending": [[p.number, p.prompt_id] for p in self.pending],
                }
            )
        body = json.loads(await request.body() or b"{}")
        for pid in body.get("delete", []):
            self.deleted.append(pid)
            self.pending = [p for p in self.pending if p.prompt_id != pid]
        return Response(status_code=200)

    async def get_history(self, request: Request) -> Response:
        pid = request.path_params["prompt_id"]
        return JSONResponse({pid: self.history[pid]} if pid in self.history else {})

    async def view(self, request: Request) -> Response:
        name = request.query_params.get("filename", "")
        kind = request.query_params.get("type", "output")
        if ".." in name or "/" in name or name.startswith("\\"):
            return Response(status_code=400)
        data = self.files.get((kind, name))
        if data is None:
            return Response(status_code=404)
        return Response(data, media_type="image/png")

    async def system_stats(self, request: Request) -> Response:
        return JSONResponse(system_stats())

    async def object_info(self, request: Request) -> Response:
        return JSONResponse(object_info())

    async def ws(self, websocket: WebSocket) -> None:
        await websocket.accept()
        cid = websocket.query_params.get("clientId") or uuid.uuid4().hex
        self.sockets[cid] = websocket
        await websocket.send_text(
            json.dumps(
                {
                    "type": "status",
                    "data": {
                        "status": {"exec_info": {"queue_remaining": len(self.pending)}},
                        "sid": cid,
                    },
                }
            )
        )
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            if self.sockets.get(cid) is websocket:
                del self.sockets[cid]

    def app(self) -> Starlette:
        """The ASGI app (the executor is run by `running_comfyui`)."""
        routes = [
            Route("/prompt", self.post_prompt, methods=["POST"]),
            Route("/interrupt", self.interrupt, methods=["POST"]),
            Route("/queue", self.queue, methods=["GET", "POST"]),
            Route("/history/{prompt_id}", self.get_history),
            Route("/view", self.view),
            Route("/system_stats", self.system_stats),
            Route("/object_info", self.object_info),
            WebSocketRoute("/ws", self.ws),
        ]
        return Starlette(routes=routes)


@asynccontextmanager
async def running_comfyui() -> AsyncIterator[tuple[FakeComfyUI, RunningServer]]:
    """A fake ComfyUI serving on a free port, its executor running, for one block."""
    fake = FakeComfyUI()
    server = RunningServer(fake.app())
    await server.start()
    runner = asyncio.create_task(fake.run_forever())
    try:
        yield fake, server
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await server.stop()
