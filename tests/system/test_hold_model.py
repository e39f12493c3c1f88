"""The hub's view of who holds what is right under every interleaving (model-based).

Hypothesis draws sequences of submits (through either of two hubs), claims (at once or
parked), completes, hand-backs, cancels (through either hub) and graceful reconnects,
played by raw workers on two hubs sharing one Redis. A plain model says what each step
must bring: which worker gets which job (always the best queued one), who is told
`cancel_job`, which parked claim a new job wakes. After every step each worker's record
(`current_jobs`, `status`) on its hub must equal the model's.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.hub_fixtures import HubFactory, HubHandle, RawPeer

WAIT = 5.0

# A step: (kind, a, b, wait). Claims are drawn most often, so that parked claims (they
# need a free slot and an empty queue) meet the submits, hand-backs and cancels that wake
# or cross them.
KINDS = ["claim"] * 4 + ["submit"] * 2 + ["complete", "release", "cancel", "reconnect"]
steps = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 7), st.integers(0, 7), st.booleans()),
    min_size=1,
    max_size=30,
)


@dataclass
class Worker:
    worker_id: str
    hub: HubHandle
    http: httpx.AsyncClient
    slots: int
    peer: RawPeer
    held: list[str] = field(default_factory=list)
    parked: bool = False


@dataclass
class Model:
    service: str
    workers: list[Worker]
    https: list[httpx.AsyncClient]
    monitors: list[RawPeer]
    #: Queued job ids by their place in claim order.
    queue: list[tuple[int, str]] = field(default_factory=list)
    place: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def enqueue(self, job_id: str) -> None:
        bisect.insort(self.queue, (self.place[job_id], job_id))

    def holder(self, job_id: str) -> Worker | None:
        return next((w for w in self.workers if job_id in w.held), None)

    def caps(self, w_slots: int) -> dict[str, Any]:
        return {"services": [self.service], "performance": {"concurrent_jobs": w_slots}}


async def _register(url: str, worker_id: str, caps: dict[str, Any], stack: Any) -> RawPeer:
    peer = await stack.enter_async_context(RawPeer.connect(url))
    await peer.request(
        {"type": "register_worker", "worker_id": worker_id, "capabilities": caps},
        "worker_registered",
    )
    return peer


async def _first_assigned(workers: list[Worker], count: int = 1) -> list[tuple[Worker, Any]]:
    """The next `count` `job_assigned` messages among these (parked) workers."""
    got: list[tuple[Worker, Any]] = []
    waiting = {asyncio.ensure_future(w.peer.expect("job_assigned", WAIT)): w for w in workers}
    try:
        while len(got) < count:
            done, _ = await asyncio.wait(waiting, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
            assert done, f"no parked worker was given a job ({len(got)} of {count})"
            for task in done:
                got.append((waiting.pop(task), task.result()))
    finally:
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
    return got


def _take(m: Model, w: Worker, msg: dict[str, Any]) -> None:
    job_id = msg["job_id"]
    w.held.append(job_id)
    w.parked = False
    m.tokens[job_id] = msg["claim_token"]


async def _wake_parked(m: Model, count: int) -> None:
    """Jobs were queued: each of the parked workers gets one of the best of them."""
    parked = [w for w in m.workers if w.parked]
    n = min(len(parked), count, len(m.queue))
    if n == 0:
        return
    got = await _first_assigned(parked, n)
    best = {job_id for _, job_id in m.queue[:n]}
    assert {msg["job_id"] for _, msg in got} == best
    for w, msg in got:
        _take(m, w, msg)
    m.queue = [q for q in m.queue if q[1] not in best]


async def _step(m: Model, step: tuple[Any, ...], stack: Any) -> None:
    kind, a, b, wait = step
    if kind == "submit":
        http = m.https[a % 2]
        r = await http.post(
            "/api/jobs", json={"type": "t", "requirements": {"service_type": m.service}}
        )
        assert r.status_code == 201
        job_id = r.json()["job_id"]
        m.place[job_id] = len(m.place)
        m.enqueue(job_id)
        await _wake_parked(m, 1)
    elif kind == "claim":
        w = m.workers[a % 3]
        await w.peer.send({"type": "claim_job", "wait_seconds": 30 if wait else 0})
        if w.parked:
            replaced = await w.peer.expect("no_job_available")
            assert replaced["reason"] == "replaced by a new claim"
            w.parked = False
        if len(w.held) >= w.slots:
            assert (await w.peer.expect("no_job_available"))["reason"] == "no free slot"
        elif m.queue:
            got = await w.peer.expect("job_assigned")
            assert got["job_id"] == m.queue[0][1], "a claim gets the best queued job"
            m.queue.pop(0)
            _take(m, w, got)
        elif wait:
            await w.peer.request({"type": "ping"}, "pong")  # handled after the claim
            assert not [p for p in w.peer.pending if p["type"] == "no_job_available"]
            w.parked = True
        else:
            await w.peer.expect("no_job_available")
    elif kind in ("complete", "release"):
        w = m.workers[a % 3]
        if not w.held:
            return
        job_id = w.held[b % len(w.held)]
        message: dict[str, Any] = {"job_id": job_id, "claim_token": m.tokens[job_id]}
        if kind == "complete":
            await w.peer.send({"type": "complete_job", "result": {}, **message})
        else:
            await w.peer.send({"type": "release_job", "reason": "cannot start", **message})
        if w.parked:
            assert (await w.peer.expect("no_job_available"))["reason"] == "a slot was freed"
            w.parked = False
        await w.peer.expect("job_completed_ack" if kind == "complete" else "job_released_ack")
        w.held.remove(job_id)
        if kind == "release":
            m.enqueue(job_id)
            await _wake_parked(m, 1)
    elif kind == "cancel":
        live = sorted([j for _, j in m.queue] + [j for w in m.workers for j in w.held])
        if not live:
            return
        job_id = live[a % len(live)]
        r = await m.https[b % 2].post(f"/api/jobs/{job_id}/cancel")
        assert r.status_code == 200, r.text
        holder = m.holder(job_id)
        if holder is None:
            m.queue = [q for q in m.queue if q[1] != job_id]
        else:
            told = await holder.peer.expect("cancel_job", where=lambda x: x["job_id"] == job_id)
            assert told["job_id"] == job_id
            holder.held.remove(job_id)
    elif kind == "reconnect":
        w = m.workers[a % 3]
        monitor = m.monitors[m.https.index(w.http)]
        await w.peer.send({"type": "disconnect", "reason": "restarting"})
        await monitor.expect(
            "worker_disconnected", WAIT, where=lambda x: x["worker_id"] == w.worker_id
        )
        await w.peer.ws.close()
        handed_back = list(w.held)
        w.held.clear()
        w.parked = False
        for job_id in handed_back:
            m.enqueue(job_id)
        await _wake_parked(m, len(handed_back))
        w.peer = await _register(w.hub.ws_url, w.worker_id, m.caps(w.slots), stack)


async def _check(m: Model) -> None:
    for w in m.workers:
        rec = (await w.http.get(f"/api/workers/{w.worker_id}")).json()
        assert sorted(rec["current_jobs"]) == sorted(w.held), (w.worker_id, rec)
        assert rec["status"] == ("busy" if w.held else "idle"), (w.worker_id, rec)
    for _, job_id in m.queue:
        rec = (await m.https[0].get(f"/api/jobs/{job_id}")).json()
        assert rec["status"] == "queued", rec
        assert rec["attempts"] == 0  # hand-backs never count an attempt
    for w in m.workers:
        for job_id in w.held:
            rec = (await m.https[1].get(f"/api/jobs/{job_id}")).json()
            assert (rec["status"], rec["worker_id"]) == ("assigned", w.worker_id), rec


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
async def test_holds_match_the_model_under_any_interleaving(
    hub_factory: HubFactory, plan: list[tuple[Any, ...]]
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        one = await stack.enter_async_context(hub_factory())
        two = await stack.enter_async_context(hub_factory())
        https = [await stack.enter_async_context(h.client()) for h in (one, two)]
        monitors = []
        for h in (one, two):
            mon = await stack.enter_async_context(RawPeer.connect(h.ws_url))
            await mon.request({"type": "subscribe_worker_updates"}, "subscription_confirmed")
            monitors.append(mon)
        service = f"svc-{uuid.uuid4().hex[:8]}"
        m = Model(service, [], https, monitors)
        for i, (h, http, slots) in enumerate(
            ((one, https[0], 1), (one, https[0], 2), (two, https[1], 1))
        ):
            worker_id = f"{service}-w{i}"
            peer = await _register(h.ws_url, worker_id, m.caps(slots), stack)
            m.workers.append(Worker(worker_id, h, http, slots, peer))
        for step in plan:
            await _step(m, step, stack)
            await _check(m)
