"""Scoped API keys, from outside: customer A's key cannot see or change B's jobs.

One test per REST route and per WebSocket client message (docs/security.md, "Scoped
API keys"). Another customer's job is 404, exactly as a job that does not exist.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.hub_fixtures import HubFactory, HubHandle, RawPeer

KEYS = "op-key,a-key:customer=A,b-key:customer=B:max_priority=60"
SIM = {"service_type": "simulation"}


@dataclass
class Tenants:
    hub: HubHandle
    op: httpx.AsyncClient
    a: httpx.AsyncClient
    b: httpx.AsyncClient
    job_b: str  # a queued job of customer B


def _client(hub: HubHandle, key: str) -> httpx.AsyncClient:
    return hub.client(headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
async def t(hub_factory: HubFactory) -> AsyncIterator[Tenants]:
    async with (
        hub_factory(api_keys=KEYS) as hub,
        _client(hub, "op-key") as op,
        _client(hub, "a-key") as a,
        _client(hub, "b-key") as b,
    ):
        r = await b.post("/api/jobs", json={"type": "t", "requirements": SIM})
        assert r.status_code == 201, r.text
        yield Tenants(hub, op, a, b, r.json()["job_id"])


async def unchanged(t: Tenants) -> None:
    """B's job is still queued and still B's, as the operator sees it."""
    job = (await t.op.get(f"/api/jobs/{t.job_b}")).json()
    assert (job["status"], job["customer_id"]) == ("queued", "B")


# ----------------------------------------------------------------------------- REST


async def test_rest_get_another_customers_job_is_404(t: Tenants) -> None:
    r = await t.a.get(f"/api/jobs/{t.job_b}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "JOB_NOT_FOUND"
    assert (await t.b.get(f"/api/jobs/{t.job_b}")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/jobs/{id}/cancel"),
        ("DELETE", "/api/jobs/{id}"),
        ("POST", "/api/jobs/{id}/retry"),
        ("GET", "/api/jobs/{id}/explain"),
        ("GET", "/api/jobs/{id}/artifacts/out.png"),
    ],
)
async def test_rest_routes_on_another_customers_job_are_404(
    t: Tenants, method: str, path: str
) -> None:
    r = await t.a.request(method, path.format(id=t.job_b))
    assert r.status_code == 404, r.text
    await unchanged(t)


async def test_rest_list_holds_only_own_jobs(t: Tenants) -> None:
    mine = (await t.a.post("/api/jobs", json={"type": "t", "requirements": SIM})).json()
    listed = (await t.a.get("/api/jobs")).json()["jobs"]
    assert [j["id"] for j in listed] == [mine["job_id"]]
    assert (await t.a.get("/api/jobs", params={"customer_id": "B"})).status_code == 404
    everyone = (await t.op.get("/api/jobs")).json()["jobs"]
    assert {j["customer_id"] for j in everyone} == {"A", "B"}


async def test_rest_submission_takes_the_keys_customer(t: Tenants) -> None:
    r = await t.a.post("/api/jobs", json={"type": "t", "customer_id": "B"})
    assert r.status_code == 403
    assert r.json()["error"]["details"][0]["field"] == "customer_id"
    r = await t.a.post(
        "/api/jobs/batch", json={"jobs": [{"type": "t"}, {"type": "t", "customer_id": "B"}]}
    )
    assert r.status_code == 403
    job_id = (await t.a.post("/api/jobs", json={"type": "t"})).json()["job_id"]
    assert (await t.op.get(f"/api/jobs/{job_id}")).json()["customer_id"] == "A"
    assert len((await t.op.get("/api/jobs", params={"customer_id": "B"})).json()["jobs"]) == 1


async def test_rest_an_idempotency_key_never_answers_with_another_customers_job(
    t: Tenants,
) -> None:
    body = {"type": "t", "idempotency_key": "order-1"}
    b_job = await t.b.post("/api/jobs", json=body)
    a_job = await t.a.post("/api/jobs", json=body)
    assert (b_job.status_code, a_job.status_code) == (201, 201)
    assert a_job.json()["job_id"] != b_job.json()["job_id"]
    again = await t.a.post("/api/jobs", json=body)
    assert (again.status_code, again.json()["job_id"]) == (200, a_job.json()["job_id"])


async def test_rest_priority_above_the_keys_ceiling_is_403(t: Tenants) -> None:
    r = await t.b.post("/api/jobs", json={"type": "t", "priority": 61})
    assert r.status_code == 403
    assert r.json()["error"]["details"][0]["field"] == "priority"
    r = await t.b.post("/api/jobs", json={"type": "t", "workflow_id": "w", "workflow_priority": 90})
    assert r.status_code == 403
    assert (await t.b.post("/api/jobs", json={"type": "t", "priority": 60})).status_code == 201


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/workers"), ("GET", "/api/workers/w1"), ("GET", "/api/stats")],
)
async def test_rest_operator_routes_are_403_for_customer_keys(
    t: Tenants, method: str, path: str
) -> None:
    r = await t.a.request(method, path)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "FORBIDDEN"
    assert (await t.op.request(method, path)).status_code in (200, 404)


async def test_rest_whoami_names_the_keys_role(t: Tenants) -> None:
    assert (await t.b.get("/api/whoami")).json() == {
        "role": "customer",
        "customer_id": "B",
        "max_priority": 60,
    }
    assert (await t.op.get("/api/whoami")).json()["role"] == "operator"


async def test_rest_customer_key_cannot_store_artifacts(t: Tenants) -> None:
    r = await t.b.put(
        f"/api/jobs/{t.job_b}/artifacts/x.txt", content=b"x", headers={"X-EMPQ-Claim-Token": "t"}
    )
    assert r.status_code == 403


async def test_rest_webhooks_of_others_are_invisible(t: Tenants) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "events": ["job_completed", "worker_alert"]}
    created = (await t.b.post("/api/webhooks", json=body)).json()
    assert created["filters"]["customer_id"] == "B"
    assert created["events"] == ["job_completed"]  # fleet alerts are not a customer's
    hook = created["id"]
    assert (await t.a.get("/api/webhooks")).json()["webhooks"] == []
    assert (await t.a.get(f"/api/webhooks/{hook}")).status_code == 404
    assert (await t.a.delete(f"/api/webhooks/{hook}")).status_code == 404
    assert [w["id"] for w in (await t.b.get("/api/webhooks")).json()["webhooks"]] == [hook]
    assert [w["id"] for w in (await t.op.get("/api/webhooks")).json()["webhooks"]] == [hook]
    r = await t.a.post("/api/webhooks", json={**body, "filters": {"customer_id": "B"}})
    assert r.status_code == 404


async def test_a_hashed_key_works_like_the_key(hub_factory: HubFactory) -> None:
    digest = hashlib.sha256(b"secret-c").hexdigest()
    async with (
        hub_factory(api_keys=f"sha256:{digest}:customer=C") as hub,
        _client(hub, "secret-c") as c,
        _client(hub, f"sha256:{digest}") as raw,
    ):
        r = await c.post("/api/jobs", json={"type": "t"})
        assert r.status_code == 201
        assert (await c.get(f"/api/jobs/{r.json()['job_id']}")).json()["customer_id"] == "C"
        # The stored digest is not itself a key.
        assert (await raw.get("/api/jobs")).status_code == 403


async def test_a_key_file_adds_keys(hub_factory: HubFactory, tmp_path: Any) -> None:
    path = tmp_path / "keys"
    path.write_text("# customers\nfile-key:customer=F\n\n")
    async with (
        hub_factory(api_keys_file=path) as hub,
        _client(hub, "file-key") as f,
        hub.client() as anonymous,
    ):
        assert (await f.post("/api/jobs", json={"type": "t"})).status_code == 201
        assert (await anonymous.get("/api/jobs")).status_code == 401


# -------------------------------------------------------------------------- WebSocket


async def _error(peer: RawPeer, message: dict[str, Any]) -> dict[str, Any]:
    return await peer.request(message, "error")


@pytest.fixture
async def ws_a(t: Tenants) -> AsyncIterator[RawPeer]:
    async with RawPeer.connect(t.hub.ws_url + "?token=a-key") as peer:
        yield peer


async def test_ws_request_job_status_of_another_customer_is_not_found(
    t: Tenants, ws_a: RawPeer
) -> None:
    err = await _error(ws_a, {"type": "request_job_status", "job_id": t.job_b})
    assert err["error_code"] == "JOB_NOT_FOUND"


async def test_ws_cancel_job_of_another_customer_is_not_found(t: Tenants, ws_a: RawPeer) -> None:
    err = await _error(ws_a, {"type": "cancel_job", "job_id": t.job_b})
    assert err["error_code"] == "JOB_NOT_FOUND"
    await unchanged(t)


async def test_ws_subscribe_job_of_another_customer_is_not_found(t: Tenants, ws_a: RawPeer) -> None:
    err = await _error(ws_a, {"type": "subscribe_job", "job_id": t.job_b})
    assert err["error_code"] == "JOB_NOT_FOUND"


async def test_ws_submit_job_for_another_customer_is_forbidden(t: Tenants, ws_a: RawPeer) -> None:
    err = await _error(ws_a, {"type": "submit_job", "job_type": "t", "customer_id": "B"})
    assert err["error_code"] == "FORBIDDEN"
    ok = await ws_a.request({"type": "submit_job", "job_type": "t"}, "job_accepted")
    assert (await t.op.get(f"/api/jobs/{ok['job_id']}")).json()["customer_id"] == "A"


async def test_ws_notifications_hold_only_own_jobs(t: Tenants, ws_a: RawPeer) -> None:
    err = await _error(
        ws_a, {"type": "subscribe_job_notifications", "filters": {"customer_id": "B"}}
    )
    assert err["error_code"] == "NOT_FOUND"
    sub = await ws_a.request(
        {"type": "subscribe_job_notifications", "enabled": True}, "job_notifications_subscribed"
    )
    assert sub["filters_applied"] == {"customer_id": "A"}
    other = (await t.b.post("/api/jobs", json={"type": "t"})).json()["job_id"]
    await t.b.post(f"/api/jobs/{other}/cancel")
    mine = (await t.a.post("/api/jobs", json={"type": "t"})).json()["job_id"]
    # Stream order: B's events came first, so had they passed they would be here.
    await ws_a.expect("job_update", where=lambda m: m.get("job_id") == mine)
    seen = {m.get("job_id") for m in ws_a.history if m.get("type") == "job_update"}
    assert seen == {mine}


@pytest.mark.parametrize(
    "message",
    [
        {"type": "subscribe_stats", "enabled": True},
        {"type": "request_stats"},
        {"type": "subscribe_worker_updates", "enabled": True},
    ],
)
async def test_ws_fleet_views_need_an_operator_key(
    t: Tenants, ws_a: RawPeer, message: dict[str, Any]
) -> None:
    assert (await _error(ws_a, message))["error_code"] == "FORBIDDEN"
    async with RawPeer.connect(
        t.hub.ws_url, additional_headers={"Authorization": "Bearer op-key"}
    ) as op:
        await op.send(message)
        reply = await op.recv()
        assert reply["type"] != "error", reply


async def test_ws_key_in_register_client_scopes_the_socket(t: Tenants) -> None:
    async with RawPeer.connect(t.hub.ws_url) as peer:
        refused = await _error(peer, {"type": "request_job_status", "job_id": t.job_b})
        assert refused["error_code"] == "AUTH_FAILED"
        await peer.request({"type": "register_client", "api_key": "a-key"}, "client_registered")
        err = await _error(peer, {"type": "request_job_status", "job_id": t.job_b})
        assert err["error_code"] == "JOB_NOT_FOUND"
    async with RawPeer.connect(t.hub.ws_url + "?token=b-key") as b:
        st = await b.request(
            {"type": "request_job_status", "job_id": t.job_b}, "response_job_status"
        )
        assert st["status"] == "queued"
