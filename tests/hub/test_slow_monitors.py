"""Monitors that fall behind: bounded by bytes, closed with a reason, counted; catch-up window."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.hub_fixtures import HubFactory, HubProcess, RawPeer, raw_worker

pytestmark = pytest.mark.slow


def metric(text: str, name: str) -> float:
    return next(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and not s.labels
    )


@asynccontextmanager
async def never_reading(ws_url: str) -> AsyncIterator[ClientConnection]:
    """A monitor with a 4 KiB receive buffer that stops reading once a message waits."""
    url = urlparse(ws_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (url.hostname, url.port))
    async with connect(ws_url, sock=sock, max_queue=1, max_size=None) as ws:
        await ws.send(json.dumps({"type": "subscribe_job_notifications"}))
        yield ws


async def read_until_closed(ws: ClientConnection, into: list[dict[str, Any]]) -> None:
    """Take messages until the connection closes (raises ConnectionClosed)."""
    while True:
        into.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))


async def run_jobs(worker: RawPeer, http: httpx.AsyncClient, n: int, result_bytes: int) -> None:
    for _ in range(n):
        r = await http.post("/api/jobs", json={"type": "t"})
        assert r.status_code == 201
        a = await worker.request({"type": "claim_job"}, "job_assigned")
        await worker.request(
            {
                "type": "complete_job",
                "job_id": a["job_id"],
                "claim_token": a["claim_token"],
                "result": {"blob": "x" * result_bytes},
            },
            "job_completed_ack",
        )


async def test_a_monitor_that_never_reads_is_closed_and_the_hub_memory_stays_flat(
    hub_process: Callable[..., AbstractAsyncContextManager[HubProcess]],
) -> None:
    async with (
        hub_process(EMPQ_WS_MAX_QUEUE_BYTES=str(512 * 1024)) as hub,
        httpx.AsyncClient(base_url=hub.http_url, timeout=10) as http,
        never_reading(hub.ws_url) as stalled,
        raw_worker(hub.ws_url, "w", {"services": ["t"]}) as worker,
    ):
        # 64 jobs of 100 kB results: 6.4 MB of events for the monitor, more than the
        # byte bound and far fewer messages than EMPQ_WS_MAX_QUEUE (10,000).
        await run_jobs(worker, http, 64, 100_000)
        text = (await http.get("/metrics")).text
        assert metric(text, "empq_ws_slow_consumers_total") == 1
        before = metric(text, "process_resident_memory_bytes")
        # Another 25 MB of events while the monitor still reads nothing.
        await run_jobs(worker, http, 250, 100_000)
        after = metric((await http.get("/metrics")).text, "process_resident_memory_bytes")
        grown = after - before
        assert grown < 8 * 1024 * 1024, f"hub grew {grown / 2**20:.1f} MiB"

        # When it reads at last: what was in the pipe, then why, then the close.
        seen: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as closed:
            await read_until_closed(stalled, seen)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013
        assert closed.value.rcvd.reason.startswith("slow consumer:")
        assert "bytes unsent" in closed.value.rcvd.reason
        assert seen[-1]["type"] == "server_disconnect"
        assert seen[-1]["reason"].startswith("slow consumer:")
        # it was cut off early: it never got the 314 completions
        assert sum(1 for m in seen if m.get("type") == "job_completed") < 100


async def test_a_send_stuck_too_long_closes_the_monitor(hub_factory: HubFactory) -> None:
    async with (
        hub_factory(ws_stall_seconds=0.3) as hub,
        never_reading(hub.ws_url) as stalled,
        raw_worker(hub.ws_url, "w", {"services": ["t"]}) as worker,
        hub.client() as http,
    ):
        # Fill the pipe until a send is stuck, then go on with small events until the
        # stall is noticed (well before the byte or message bounds).
        await run_jobs(worker, http, 4, 1_000_000)
        async with asyncio.timeout(10):
            while metric((await http.get("/metrics")).text, "empq_ws_slow_consumers_total") == 0:
                await run_jobs(worker, http, 1, 10)
        with pytest.raises(ConnectionClosed) as closed:
            await read_until_closed(stalled, [])
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013
        assert "stuck" in closed.value.rcvd.reason


async def test_catch_up_says_when_events_were_dropped(hub_factory: HubFactory) -> None:
    async with (
        hub_factory(catchup_max_events=5) as hub,
        hub.client() as http,
        RawPeer.connect(hub.ws_url) as watcher,  # shows when the hub has read an event
    ):
        await watcher.request(
            {"type": "subscribe_job_notifications"}, "job_notifications_subscribed"
        )

        async def queue(n: int) -> list[str]:
            ids = [
                (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
                for _ in range(n)
            ]
            await watcher.expect("job_update", where=lambda m: m["job_id"] == ids[-1])
            return ids

        async with RawPeer.connect(hub.ws_url) as monitor:
            await monitor.request(
                {"type": "subscribe_job_notifications"}, "job_notifications_subscribed"
            )
            await http.post("/api/jobs", json={"type": "t"})
            last = (await monitor.expect("job_update"))["event_id"]
        # Gone while 3 jobs were queued: within the window.
        # (queue() waits until the hub has read the last one: catch-up replays what it read.)
        small = await queue(3)
        async with RawPeer.connect(hub.ws_url) as monitor:
            ok = await monitor.request(
                {"type": "subscribe_job_notifications", "since": last},
                "job_notifications_subscribed",
            )
            assert ok["catch_up"]["dropped"] is False
            assert ok["catch_up"]["replayed"] == 3
            got = [(await monitor.expect("job_update"))["job_id"] for _ in small]
            assert got == small
            last = monitor.history[-1]["event_id"]
        # Gone while 8 were queued: only the newest 5 come back, and the reply says so.
        many = await queue(8)
        async with RawPeer.connect(hub.ws_url) as monitor:
            ok = await monitor.request(
                {"type": "subscribe_job_notifications", "since": last},
                "job_notifications_subscribed",
            )
            assert ok["catch_up"]["dropped"] is True
            assert ok["catch_up"]["replayed"] == 5
            got = [(await monitor.expect("job_update"))["job_id"] for _ in range(5)]
            assert got == many[-5:], [many.index(g) if g in many else g for g in got]
