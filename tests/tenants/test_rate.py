"""A customer key's submission rate (EMPQ_CUSTOMER_SUBMIT_RATE): past it, 429 + Retry-After."""

from __future__ import annotations

from tests.support.hub_fixtures import HubFactory, RawPeer

KEYS = "op-key,a-key:customer=A,b-key:customer=B"


async def test_past_its_rate_a_customer_gets_429_with_retry_after(
    hub_factory: HubFactory,
) -> None:
    # 0.1 submissions/s: a bucket of one, refilled in ten seconds.
    async with (
        hub_factory(api_keys=KEYS, customer_submit_rate={"A": 0.1}) as hub,
        hub.client(headers={"Authorization": "Bearer a-key"}) as a,
        hub.client(headers={"Authorization": "Bearer b-key"}) as b,
        hub.client(headers={"Authorization": "Bearer op-key"}) as op,
    ):
        batch = {"jobs": [{"type": "t"}] * 3}
        assert (await a.post("/api/jobs/batch", json=batch)).status_code == 201
        refused = await a.post("/api/jobs", json={"type": "t"})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "RATE_LIMITED"
        assert 1 <= int(refused.headers["Retry-After"]) <= 30
        async with RawPeer.connect(hub.ws_url + "?token=a-key") as ws:
            err = await ws.request({"type": "submit_job", "job_type": "t"}, "error")
            assert err["error_code"] == "RATE_LIMITED"
            assert err["details"]["retry_after"] > 0
        # Nothing was stored for the refused ones; other customers are not held back.
        assert len((await a.get("/api/jobs")).json()["jobs"]) == 3
        assert (await b.post("/api/jobs", json={"type": "t"})).status_code == 201
        assert (await op.post("/api/jobs", json={"type": "t"})).status_code == 201
