"""API keys and worker tokens (CONTRACT §3, §9)."""

from __future__ import annotations

from websockets.asyncio.client import connect

from tests.support.hub_fixtures import HubFactory, RawPeer


async def test_api_keys_guard_api_but_not_health(hub_factory: HubFactory) -> None:
    async with hub_factory(api_keys="k1,k2") as hub, hub.client() as http:
        r = await http.get("/api/jobs")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "AUTH_REQUIRED"
        r = await http.get("/api/jobs", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "AUTH_FAILED"
        r = await http.post("/api/jobs", json={"type": "t"}, headers={"Authorization": "Bearer k2"})
        assert r.status_code == 201
        for path in ("/health", "/ready", "/metrics"):
            assert (await http.get(path)).status_code == 200


async def test_ws_clients_need_a_key_when_keys_are_set(hub_factory: HubFactory) -> None:
    async with hub_factory(api_keys="k1") as hub:
        async with RawPeer.connect(hub.ws_url) as c:
            err = await c.request({"type": "submit_job", "job_type": "t"}, "error")
            assert err["error_code"] == "AUTH_FAILED"
            err = await c.request({"type": "register_client", "api_key": "bad"}, "error")
            assert err["error_code"] == "AUTH_FAILED"
            await c.request({"type": "register_client", "api_key": "k1"}, "client_registered")
            await c.request({"type": "submit_job", "job_type": "t"}, "job_accepted")
        async with RawPeer.connect(hub.ws_url + "?api_key=k1") as c:
            await c.request({"type": "submit_job", "job_type": "t"}, "job_accepted")


async def test_refused_worker_token_gets_auth_failed_and_socket_closes(
    hub_factory: HubFactory,
) -> None:
    async with hub_factory(worker_tokens="secret") as hub:
        async with connect(hub.ws_url) as ws:
            await ws.recv()  # connection_established
            await ws.send('{"type": "register_worker", "worker_id": "w", "auth_token": "bad"}')
            import json

            err = json.loads(await ws.recv())
            assert err["type"] == "error"
            assert err["error_code"] == "AUTH_FAILED"
            await ws.wait_closed()
            assert ws.close_code is not None
        async with RawPeer.connect(hub.ws_url) as w:
            ok = await w.request(
                {"type": "register_worker", "worker_id": "w", "auth_token": "secret"},
                "worker_registered",
            )
            assert ok["worker_id"] == "w"
