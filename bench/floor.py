"""What this machine charges for dispatch's process hops, without empq.

`bench/dispatch.py` times a chain of messages between processes: the client submits
to the hub, the hub offers the job to a worker, the worker claims, the hub assigns.
This script times the same chain between two bare asyncio processes (uvloop, one
TCP line per message, no framework and no Redis), and one HTTP round trip to a
trivial uvicorn app, raw ASGI and FastAPI, with the same idle gaps between samples
as dispatch.py. The difference between its figures and dispatch.py's is the cost
of empq and the libraries it is built on; these figures are the floor under them.

    python bench/floor.py [--samples 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import uvloop
from pydantic import BaseModel

GAP_S = (0.005, 0.03)  # as in bench/dispatch.py


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _figures(lat: list[float]) -> dict[str, float]:
    q = statistics.quantiles(lat, n=100)
    return {"p50_ms": statistics.median(lat), "p99_ms": q[98]}


# ------------------------------------------------------------------ the bare chain


async def _chain_hub(port: int) -> None:
    worker: asyncio.StreamWriter | None = None

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal worker
        while line := await r.readline():
            if line == b"worker\n":
                worker = w
            elif line == b"submit\n" and worker is not None:
                worker.write(b"offer\n")
                w.write(b"ok\n")
            elif line == b"claim\n":
                w.write(b"assigned\n")

    server = await asyncio.start_server(on_conn, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def _chain_client(port: int, samples: int) -> dict[str, float]:
    for _ in range(200):
        try:
            cr, cw = await asyncio.open_connection("127.0.0.1", port)
            break
        except OSError:
            await asyncio.sleep(0.05)
    wr, ww = await asyncio.open_connection("127.0.0.1", port)
    ww.write(b"worker\n")
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[int] = loop.create_future()

    async def worker() -> None:
        while line := await wr.readline():
            if line == b"offer\n":
                ww.write(b"claim\n")
            elif line == b"assigned\n" and not arrived.done():
                arrived.set_result(time.perf_counter_ns())

    task = asyncio.create_task(worker())
    lat: list[float] = []
    for i in range(samples + 20):
        await asyncio.sleep(random.uniform(*GAP_S))
        arrived = loop.create_future()
        t0 = time.perf_counter_ns()
        cw.write(b"submit\n")
        await cr.readline()
        t1 = await asyncio.wait_for(arrived, 5)
        if i >= 20:
            lat.append((t1 - t0) / 1e6)
    task.cancel()
    return _figures(lat)


# ------------------------------------------------------------------ one HTTP round trip


class Submission(BaseModel):
    type: str
    payload: dict[str, Any] = {}
    requirements: dict[str, Any] = {}


def _http_app(kind: str) -> Any:
    if kind == "raw":

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            while (await receive()).get("more_body"):
                pass
            body = b'{"ok":true}'
            headers = [(b"content-type", b"application/json"), (b"content-length", b"11")]
            await send({"type": "http.response.start", "status": 201, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return app
    from fastapi import FastAPI

    fastapi_app = FastAPI()

    @fastapi_app.post("/api/jobs", status_code=201)
    async def submit(sub: Submission) -> dict[str, Any]:
        return {"ok": True, "type": sub.type}

    return fastapi_app


async def _http_client(port: int, samples: int) -> dict[str, float]:
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from dispatch import RawHttp  # the same lean client dispatch.py uses

    client = RawHttp(f"http://127.0.0.1:{port}")
    body = {"type": "bench", "payload": {"i": 0}, "requirements": {"service_type": "bench"}}
    for _ in range(200):
        try:
            await client.post("/api/jobs", body)
            break
        except OSError:
            client.writer = None
            await asyncio.sleep(0.05)
    lat: list[float] = []
    for i in range(samples + 20):
        await asyncio.sleep(random.uniform(*GAP_S))
        t0 = time.perf_counter_ns()
        status, _ = await client.post("/api/jobs", body)
        assert status == 201, (status, _)
        if i >= 20:
            lat.append((time.perf_counter_ns() - t0) / 1e6)
    await client.close()
    return _figures(lat)


def _serve(role: str, port: int) -> None:
    if role == "chain":
        uvloop.run(_chain_hub(port))
        return
    import uvicorn

    config = uvicorn.Config(
        _http_app(role), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    uvicorn.Server(config).run()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--serve", choices=["chain", "raw", "fastapi"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        _serve(args.serve, args.port)
        return
    rows: list[tuple[str, dict[str, float]]] = []
    for role, label, client in (
        ("chain", "submit -> offer -> claim -> assigned, bare asyncio processes", _chain_client),
        ("raw", "one HTTP POST round trip, uvicorn + raw ASGI app", _http_client),
        ("fastapi", "one HTTP POST round trip, uvicorn + FastAPI + pydantic body", _http_client),
    ):
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", role, "--port", str(port)],
            stdout=subprocess.DEVNULL,
        )
        try:
            rows.append((label, uvloop.run(client(port, args.samples))))
        finally:
            server.terminate()
            server.wait(10)
    print("| path | p50 ms | p99 ms |\n|---|---:|---:|")
    for label, f in rows:
        print(f"| {label} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} |")
    print(json.dumps({label: f for label, f in rows}))


if __name__ == "__main__":
    main()
