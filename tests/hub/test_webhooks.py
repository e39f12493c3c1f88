"""Webhooks: registered and per-job, signed, retried, durable (CONTRACT §5)."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import pytest

from empq.broker import Broker
from empq.config import BrokerSettings
from empq.hub.services import webhooks
from empq.models import JobSubmission
from tests.hub.conftest import Receiver, json_of
from tests.support.hub_fixtures import HubFactory, HubHandle, raw_worker


async def _new_job_delivered(http: Any, receiver: Receiver, within: float = 5.0) -> float:
    """Register a status-change webhook and submit a job: seconds until the receiver
    has the job's delivery (checked to be that job's)."""
    await http.post(
        "/api/webhooks", json={"url": receiver.url + "/h", "events": ["job_status_change"]}
    )
    t0 = time.monotonic()
    job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
    d = await receiver.next(within=within)
    assert json_of(d)["data"]["job_id"] == job_id
    return time.monotonic() - t0


async def test_webhook_registration_crud(hub: HubHandle) -> None:
    async with hub.client() as http:
        r = await http.post(
            "/api/webhooks",
            json={"url": "http://example.test/h", "events": ["job_completed"], "secret": "s"},
        )
        assert r.status_code == 201
        hook = r.json()
        assert hook["events"] == ["job_completed"]
        assert "secret" not in hook
        assert hook["has_secret"] is True
        listed = (await http.get("/api/webhooks")).json()["webhooks"]
        assert [h["id"] for h in listed] == [hook["id"]]
        assert (await http.get(f"/api/webhooks/{hook['id']}")).json()["url"] == hook["url"]
        assert (await http.delete(f"/api/webhooks/{hook['id']}")).status_code == 204
        r = await http.get(f"/api/webhooks/{hook['id']}")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "WEBHOOK_NOT_FOUND"
        r = await http.post("/api/webhooks", json={"url": "ftp://x", "events": ["nope"]})
        assert r.status_code == 422
        assert {d["field"] for d in r.json()["error"]["details"]} == {"url", "events.0"}


async def test_registered_webhook_gets_signed_job_events(
    hub: HubHandle, receiver: Receiver
) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w") as w:
        await http.post(
            "/api/webhooks",
            json={"url": receiver.url + "/hook", "secret": "s3", "events": ["job_completed"]},
        )
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        a = await w.request({"type": "claim_job"}, "job_assigned")
        await w.request(
            {
                "type": "complete_job",
                "job_id": job_id,
                "claim_token": a["claim_token"],
                "result": {"ok": 1},
            },
            "job_completed_ack",
        )
        d = await receiver.next()
        body = json_of(d)
        assert body["event_type"] == "job_completed"
        assert body["data"]["job_id"] == job_id
        assert body["data"]["result"] == {"ok": 1}
        assert isinstance(body["timestamp"], int)
        assert body["webhook_id"]
        expected = "sha256=" + hmac.new(b"s3", d.body, hashlib.sha256).hexdigest()
        assert d.headers["x-empq-signature"] == expected


async def test_per_job_webhook_and_filters(hub: HubHandle, receiver: Receiver) -> None:
    async with hub.client() as http:
        await http.post(
            "/api/webhooks",
            json={
                "url": receiver.url + "/acme",
                "events": ["job_status_change"],
                "filters": {"customer_id": "acme"},
            },
        )
        job_id = (
            await http.post("/api/jobs", json={"type": "t", "webhook_url": receiver.url + "/mine"})
        ).json()["job_id"]
        first = await receiver.next()
        assert first.path == "/mine"
        assert "x-empq-signature" not in first.headers
        body = json_of(first)
        assert body["event_type"] == "job_status_change"
        assert body["data"]["job_id"] == job_id
        assert body["data"]["status"] == "queued"
        acme = (await http.post("/api/jobs", json={"type": "t", "customer_id": "acme"})).json()
        second = await receiver.next()
        assert second.path == "/acme"
        assert json_of(second)["data"]["job_id"] == acme["job_id"]


async def test_failing_endpoint_is_retried_with_backoff(
    hub_factory: HubFactory, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    async with hub_factory(webhook_retry_delays="0.05,0.05") as hub, hub.client() as http:
        await _new_job_delivered(http, receiver)
        assert receiver.seen == 3
        metrics = (await http.get("/metrics")).text
        assert 'empq_webhook_failures_total{final="false"} 2.0' in metrics


async def test_deliveries_and_their_retries_do_not_wait_for_the_idle_poll(
    hub_factory: HubFactory, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The consumer and the delivery task poll only when idle (here: never within the
    # test). A new event wakes the consumer, a new delivery wakes the delivery task,
    # and a failed attempt's back-off sets the delivery task's next round.
    monkeypatch.setattr(webhooks, "IDLE_SECONDS", 60.0)
    receiver.fail_first = 1
    async with hub_factory(webhook_retry_delays="0.2") as hub, hub.client() as http:
        took = await _new_job_delivered(http, receiver, within=3)
        assert receiver.seen == 2
        assert took >= 0.2  # the failed attempt's back-off was kept


async def test_events_while_no_hub_runs_are_delivered_after_restart(
    hub_factory: HubFactory, receiver: Receiver, redis_url: str
) -> None:
    async with hub_factory() as hub, hub.client() as http:
        await http.post(
            "/api/webhooks", json={"url": receiver.url + "/h", "events": ["job_status_change"]}
        )
    broker = await Broker.connect(BrokerSettings(redis_url=redis_url))
    try:
        result = await broker.submit(JobSubmission(type="while-down"))
    finally:
        await broker.close()
    async with hub_factory():
        d = await receiver.next()
        assert json_of(d)["data"]["job_id"] == result.job_id


async def test_private_targets_refused_when_configured(hub_factory: HubFactory) -> None:
    async with hub_factory(webhook_deny_private=True) as hub, hub.client() as http:
        r = await http.post("/api/webhooks", json={"url": "http://127.0.0.1:9/h"})
        assert r.status_code == 422
        assert r.json()["error"]["details"][0]["field"] == "url"


async def test_deliveries_another_hub_added_go_out_without_waiting_for_the_idle_poll(
    hub_factory: HubFactory, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The event goes to the second hub's consumer (the first hub's is stopped), which
    # adds the delivery to the outbox; the first hub holds the delivery lease and must
    # notice without its (here 60 s) idle poll: its event pump saw the event too.
    monkeypatch.setattr(webhooks, "IDLE_SECONDS", 60.0)
    async with hub_factory() as leader, hub_factory() as other, other.client() as http:
        assert "webhooks" in leader.hub.leases.held
        (consumer,) = [t for t in leader.hub._tasks if t.get_name() == "empq-webhook-outbox"]
        consumer.cancel()
        await _new_job_delivered(http, receiver, within=3)
        assert "webhooks" not in other.hub.leases.held


@pytest.mark.slow
async def test_deliveries_go_on_within_seconds_when_the_delivery_leader_dies(
    hub_factory: HubFactory, receiver: Receiver
) -> None:
    # The leader's delivery task dies without giving up its lease (as in a crash): the
    # lease's TTL (3 s: a long round renews it instead of needing a long TTL) bounds
    # how long deliveries wait for another hub.
    async with hub_factory() as leader, hub_factory() as other, other.client() as http:
        assert "webhooks" in leader.hub.leases.held
        (delivery,) = [t for t in leader.hub._tasks if t.get_name() == "empq-webhook-delivery"]
        delivery.cancel()
        assert await _new_job_delivered(http, receiver, within=8) < 5
        assert "webhooks" in other.hub.leases.held
