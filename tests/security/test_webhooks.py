"""Webhook targets refused at registration (docs/security.md): with
`EMPQ_WEBHOOK_DENY_PRIVATE=true` a URL whose host is, or resolves to, a loopback,
private, link-local or unspecified address gets 422 naming `url`."""

from __future__ import annotations

import pytest

from tests.support.hub_fixtures import HubFactory

PRIVATE = [
    "http://127.0.0.1:9/h",
    "http://localhost:9/h",
    "http://localhost.:9/h",  # a name, resolved
    "http://2130706433:9/h",  # 127.0.0.1 as one number, resolved
    "http://[::1]:9/h",
    "http://[::ffff:127.0.0.1]:9/h",
    "http://10.1.2.3/h",
    "http://192.168.0.10/h",
    "http://169.254.169.254/latest/meta-data",  # cloud metadata
    "http://0.0.0.0:9/h",
]


async def test_private_targets_refused_at_registration(hub_factory: HubFactory) -> None:
    async with hub_factory(webhook_deny_private=True) as hub, hub.client() as http:
        for url in PRIVATE:
            r = await http.post("/api/webhooks", json={"url": url})
            assert r.status_code == 422, (url, r.text)
            assert r.json()["error"]["details"][0]["field"] == "url"
        assert (await http.get("/api/webhooks")).json()["webhooks"] == []
        # A public address is accepted (nothing is sent at registration).
        r = await http.post("/api/webhooks", json={"url": "http://93.184.215.14/h"})
        assert r.status_code == 201


@pytest.mark.parametrize("url", PRIVATE[:3])
async def test_private_targets_allowed_by_default(hub_factory: HubFactory, url: str) -> None:
    async with hub_factory() as hub, hub.client() as http:
        assert (await http.post("/api/webhooks", json={"url": url})).status_code == 201
