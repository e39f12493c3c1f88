"""`POST /api/jobs` answered by the hub's fast path (hub/routes/fast_submit.py) and by FastAPI.

The fast path takes well-formed submissions; everything else goes on to the FastAPI
route. A user must not be able to tell which one answered.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

from empq.redis_server import RedisServer
from tests.support.hub_fixtures import HubFactory, HubHandle, start_hub


async def test_api_keys_are_checked_before_anything_is_queued(hub_factory: HubFactory) -> None:
    async with hub_factory(api_keys="k1") as hub, hub.client() as http:
        body = {"type": "t", "payload": {"n": 1}}
        r = await http.post("/api/jobs", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "AUTH_REQUIRED")
        r = await http.post("/api/jobs", json=body, headers={"Authorization": "Bearer k2"})
        assert (r.status_code, r.json()["error"]["code"]) == (403, "AUTH_FAILED")
        ok = {"Authorization": "Bearer k1"}
        assert (await http.get("/api/jobs", headers=ok)).json()["jobs"] == []
        r = await http.post("/api/jobs", json=body, headers=ok)
        assert r.status_code == 201


async def test_a_body_sent_in_chunks_is_read_whole(hub: HubHandle) -> None:
    payload = {"prompt": "a castle " * 2000}

    async def chunks() -> AsyncIterator[bytes]:
        raw = json.dumps({"type": "t", "payload": payload}).encode()
        for i in range(0, len(raw), 1000):
            yield raw[i : i + 1000]

    async with hub.client() as http:
        r = await http.post(
            "/api/jobs", content=chunks(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 201, r.text
        job = (await http.get(f"/api/jobs/{r.json()['job_id']}")).json()
        assert job["payload"] == payload


async def test_same_reply_whoever_answers(hub: HubHandle) -> None:
    async with hub.client() as http:
        # A charset parameter is still JSON; a trailing slash is the same route.
        a = await http.post(
            "/api/jobs",
            content=json.dumps({"type": "t", "idempotency_key": "k"}),
            headers={"content-type": "application/json; charset=utf-8"},
        )
        b = await http.post("/api/jobs/", json={"type": "t", "idempotency_key": "k"})
        assert (a.status_code, b.status_code) == (201, 200)
        assert b.json()["job_id"] == a.json()["job_id"]
        assert b.json()["status"] == "queued"
        # A body that is not valid gets the FastAPI route's error, field by field.
        r = await http.post("/api/jobs", json={"type": "t", "priority": "high"})
        assert r.status_code == 422
        assert [d["field"] for d in r.json()["error"]["details"]] == ["priority"]


async def test_a_new_job_gets_the_same_201_whoever_answers(hub: HubHandle) -> None:
    # `application/json` is the fast path's; FastAPI also takes `+json` types, which
    # the fast path leaves to it. Same status, same headers, same body fields.
    body = json.dumps({"type": "t", "payload": {"prompt": "ünï"}})
    async with hub.client() as http:
        fast = await http.post(
            "/api/jobs", content=body, headers={"content-type": "application/json"}
        )
        slow = await http.post(
            "/api/jobs", content=body, headers={"content-type": "application/vnd.empq+json"}
        )
    assert fast.status_code == slow.status_code == 201
    drop = {"date"}
    assert {k: v for k, v in fast.headers.items() if k not in drop}.keys() == {
        k: v for k, v in slow.headers.items() if k not in drop
    }.keys()
    assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
    assert int(fast.headers["content-length"]) == len(fast.content)
    a, b = fast.json(), slow.json()
    assert (
        a.keys()
        == b.keys()
        == {
            "job_id",
            "status",
            "position",
            "created_at",
            "eta_seconds",
            "eta_reason",
            "warnings",
        }
    )
    assert (a["status"], a["position"], b["position"]) == ("queued", 1, 2)
    assert a["warnings"] == b["warnings"]  # no worker is connected: both say so


async def test_redis_down_is_503_in_the_error_shape(tmp_path: Path) -> None:
    with RedisServer(persistent=False) as redis:
        async with start_hub(redis.url, tmp_path) as hub, hub.client() as http:
            assert (await http.post("/api/jobs", json={"type": "t"})).status_code == 201
            redis.stop()
            for method, path in (("POST", "/api/jobs"), ("GET", "/api/jobs")):
                body = {"type": "t"} if method == "POST" else None
                r = await http.request(method, path, json=body)
                assert r.status_code == 503, (path, r.text)
                err = r.json()["error"]
                assert err["code"] == "UNAVAILABLE"
                assert "queue storage unavailable" in err["message"]
