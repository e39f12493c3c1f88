"""Rights by role (docs/security.md): every cell of role x message, probed from outside.

A socket's rights come only from what it presented: an API key (on the upgrade or in
`register_client`) for client messages when keys are set; a registration (with a
worker token when tokens are set) for worker messages. Issue 25 holes 1 and 3.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from empq.hub.sockets import rights
from empq.protocol import INBOUND_TYPES
from tests.security.support import outcome
from tests.support.hub_fixtures import HubFactory, HubHandle, RawPeer

KEY = "client-key-1"
TOKEN = "worker-token-1"

# Written out from CONTRACT §4's two tables, not taken from the hub's code.
#: message type -> (sample body, the reply that shows it was handled, or None)
CLIENT: dict[str, tuple[dict[str, Any], str | None]] = {
    "submit_job": (
        {"job_type": "t", "requirements": {"service_type": "nobody"}},
        "job_accepted",
    ),
    "request_job_status": ({"job_id": "nope"}, "response_job_status"),
    "cancel_job": ({"job_id": "nope"}, "job_cancelled"),
    "subscribe_job": ({"job_id": "j1"}, "job_notifications_subscribed"),
    "unsubscribe_job": ({"job_id": "j1"}, "job_notifications_subscribed"),
    "subscribe_job_notifications": ({}, "job_notifications_subscribed"),
    "subscribe_stats": ({"enabled": False}, "subscription_confirmed"),
    "request_stats": ({}, "stats_broadcast"),
    "subscribe_worker_updates": ({}, "subscription_confirmed"),
}
WORKER: dict[str, tuple[dict[str, Any], str | None]] = {
    "claim_job": ({}, "no_job_available"),
    "job_accepted_by_worker": ({"job_id": "nope", "claim_token": "x"}, None),
    "update_job_progress": ({"job_id": "nope", "claim_token": "x", "progress": 5}, None),
    "complete_job": ({"job_id": "nope", "claim_token": "x", "result": {}}, "job_completed_ack"),
    "fail_job": ({"job_id": "nope", "claim_token": "x", "error": "e"}, "job_failed_ack"),
    "release_job": ({"job_id": "nope", "claim_token": "x", "reason": "r"}, "job_released_ack"),
    "worker_heartbeat": ({}, "worker_heartbeat_ack"),
    "worker_status": ({"status": "idle"}, None),
    "update_capabilities": ({"capability_changes": {}}, None),
    "disconnect": ({"reason": "bye"}, None),
}
MESSAGES = {t: v for t, v in {**CLIENT, **WORKER}.items() if t in INBOUND_TYPES}

#: role -> (how it connects and what it presents)
ROLES = ("anonymous", "key_bearer", "key_query", "key_register", "worker", "worker_and_key")


@asynccontextmanager
async def socket_as(hub: HubHandle, role: str, worker_id: str) -> AsyncIterator[RawPeer]:
    """A socket that presented what `role` says, and nothing else."""
    url, headers = hub.ws_url, {}
    if role == "key_bearer":
        headers = {"Authorization": f"Bearer {KEY}"}
    if role == "key_query":
        url += f"?token={KEY}"
    async with RawPeer.connect(url, additional_headers=headers) as peer:
        if role in ("key_register", "worker_and_key"):
            await peer.request({"type": "register_client", "api_key": KEY}, "client_registered")
        if role in ("worker", "worker_and_key"):
            await peer.request(
                {
                    "type": "register_worker",
                    "worker_id": worker_id,
                    "capabilities": {"services": ["none"]},
                    "auth_token": TOKEN,
                },
                "worker_registered",
            )
        yield peer


def expected(keys: bool, role: str, message_type: str) -> str:
    if message_type in CLIENT:
        has_key = role.startswith("key") or role == "worker_and_key"
        return "allowed" if has_key or not keys else "refused:AUTH_FAILED"
    registered = role.startswith("worker")
    return "allowed" if registered else "refused:NOT_REGISTERED"


MODES = {
    "keys_and_tokens": {"api_keys": KEY, "worker_tokens": TOKEN},
    "keys_only": {"api_keys": KEY},
    "tokens_only": {"worker_tokens": TOKEN},
    "open": {},
}


@pytest.mark.parametrize("mode", MODES)
async def test_every_role_and_message_cell(hub_factory: HubFactory, mode: str) -> None:
    settings = MODES[mode]
    keys = "api_keys" in settings
    got: dict[tuple[str, str], str] = {}
    want: dict[tuple[str, str], str] = {}
    async with hub_factory(**settings) as hub:
        for role in ROLES:
            for n, (mtype, (body, reply)) in enumerate(MESSAGES.items()):
                # A fresh socket per cell: `disconnect` ends a registration.
                async with socket_as(hub, role, f"w-{role}-{n}") as peer:
                    got[role, mtype] = await outcome(peer, {"type": mtype, **body}, reply)
                want[role, mtype] = expected(keys, role, mtype)
    wrong = {cell: (got[cell], want[cell]) for cell in got if got[cell] != want[cell]}
    assert not wrong, wrong


async def test_worker_registration_grants_no_client_message(hub_factory: HubFactory) -> None:
    """Hole 1: keys set, no worker tokens: a socket with no key registers as a worker;
    it still may not submit, read, subscribe to or cancel anyone's jobs."""
    async with hub_factory(api_keys=KEY) as hub:
        async with hub.client(headers={"Authorization": f"Bearer {KEY}"}) as http:
            job = (await http.post("/api/jobs", json={"type": "t"})).json()
        async with RawPeer.connect(hub.ws_url) as rogue:
            await rogue.request(
                {"type": "register_worker", "worker_id": "rogue"}, "worker_registered"
            )
            for mtype, body in (
                ("submit_job", {"job_type": "t"}),
                ("request_job_status", {"job_id": job["job_id"]}),
                ("subscribe_job_notifications", {}),
                ("cancel_job", {"job_id": job["job_id"]}),
            ):
                assert await outcome(rogue, {"type": mtype, **body}, None) == "refused:AUTH_FAILED"
        async with hub.client(headers={"Authorization": f"Bearer {KEY}"}) as http:
            after = (await http.get(f"/api/jobs/{job['job_id']}")).json()
            assert after["status"] == "queued"
            listed = (await http.get("/api/jobs")).json()["jobs"]
            assert [j["id"] for j in listed] == [job["job_id"]]


async def test_worker_token_grants_no_client_message(hub_factory: HubFactory) -> None:
    """Hole 3: a valid worker token, presented every way a key could be, is no API key."""
    async with hub_factory(api_keys=KEY, worker_tokens=TOKEN) as hub:
        for url, headers in (
            (hub.ws_url + f"?token={TOKEN}", {}),
            (hub.ws_url + f"?api_key={TOKEN}", {}),
            (hub.ws_url, {"Authorization": f"Bearer {TOKEN}"}),
        ):
            async with RawPeer.connect(url, additional_headers=headers) as peer:
                await peer.request(
                    {"type": "register_worker", "worker_id": "w1", "auth_token": TOKEN},
                    "worker_registered",
                )
                body = {"type": "submit_job", "job_type": "t"}
                assert await outcome(peer, body, "job_accepted") == "refused:AUTH_FAILED"
                err = await peer.request({"type": "register_client", "api_key": TOKEN}, "error")
                assert err["error_code"] == "AUTH_FAILED"
        async with hub.client(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            assert (await http.get("/api/jobs")).status_code == 403


def test_every_inbound_message_has_a_role() -> None:
    """A message type added later is classified, never open by default."""
    classified = rights.CLIENT_MESSAGES | rights.WORKER_MESSAGES | rights.OPEN_MESSAGES
    assert set(INBOUND_TYPES) <= classified
    assert not rights.CLIENT_MESSAGES & rights.WORKER_MESSAGES
    assert set(CLIENT) == rights.CLIENT_MESSAGES
    assert set(WORKER) == rights.WORKER_MESSAGES
