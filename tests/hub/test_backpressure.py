"""A WebSocket peer that stops reading: the hub never blocks on it, and closes it."""

from __future__ import annotations

import asyncio
import json
import socket
from urllib.parse import urlparse

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.hub_fixtures import HubFactory, RawPeer, raw_worker

BATCH = 200


async def read_until_closed(ws: ClientConnection, into: list[dict[str, object]]) -> None:
    """Take messages until the connection closes (raises ConnectionClosed)."""
    while True:
        into.append(json.loads(await asyncio.wait_for(ws.recv(), 3)))


async def test_a_monitor_that_stops_reading_is_closed_and_others_keep_their_events(
    hub_factory: HubFactory,
) -> None:
    async with hub_factory(ws_max_queue=50) as hub:
        # The stalled monitor: a tiny socket receive buffer, and a client that stops
        # reading from its socket once one message waits unread (max_queue=1).
        url = urlparse(hub.ws_url)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (url.hostname, url.port))
        async with (
            connect(hub.ws_url, sock=sock, max_queue=1, max_size=None) as stalled,
            RawPeer.connect(hub.ws_url) as healthy,
            raw_worker(hub.ws_url, "w1", {"services": ["t"]}) as worker,
            hub.client() as http,
        ):
            for peer_send in (stalled.send, healthy.send):
                await peer_send(json.dumps({"type": "subscribe_job_notifications"}))
            await healthy.expect("job_notifications_subscribed")
            # Eight jobs finished with a megabyte of result each: more than the socket
            # buffers between the hub and the stalled monitor hold.
            for _ in range(8):
                r = await http.post("/api/jobs", json={"type": "t"})
                a = await worker.request({"type": "claim_job"}, "job_assigned")
                await worker.request(
                    {
                        "type": "complete_job",
                        "job_id": a["job_id"],
                        "claim_token": a["claim_token"],
                        "result": {"blob": "x" * 1_000_000},
                    },
                    "job_completed_ack",
                )
                await healthy.expect("job_completed", within=10)
            # Then more events than the hub keeps waiting for one socket.
            jobs = [{"type": "t", "requirements": {"service_type": "none"}}] * BATCH
            r = await http.post("/api/jobs/batch", json={"jobs": jobs})
            assert r.status_code == 201, r.text
            job_ids = [j["job_id"] for j in r.json()["jobs"]]

            # The healthy monitor hears about every job while the other one is stuck.
            seen: set[str] = set()
            while not seen >= set(job_ids):
                m = await healthy.expect("job_update", where=lambda m: m["status"] == "queued")
                seen.add(m["job_id"])
            # Other traffic on the hub is not held up either.
            pong = await worker.request({"type": "ping"}, "pong")
            assert pong["type"] == "pong"

            # Read what the stalled monitor was sent: the hub gave up on it, said why,
            # and closed it with 1013 (try again later).
            received: list[dict[str, object]] = []
            with pytest.raises(ConnectionClosed) as closed:
                await read_until_closed(stalled, received)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1013
            assert received[-1]["type"] == "server_disconnect"
            assert "slow consumer" in str(received[-1]["reason"])
            queued = {m["job_id"] for m in received if m.get("type") == "job_update"}
            assert len(queued) < len(job_ids)  # it missed events: it must catch up with since

            metrics = (await http.get("/metrics")).text
            assert "empq_ws_slow_consumers_total 1.0" in metrics
