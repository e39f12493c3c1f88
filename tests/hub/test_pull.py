"""Pull, for real (CONTRACT §9): a worker gets a job only by asking, and always the best.

Long-poll claims (`wait_seconds`), `claim_next` on outcomes, `release_job`, and an idle
worker's offer that hides nothing from other workers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.hub_fixtures import HubFactory, HubHandle, RawPeer, raw_worker

SIM = {"service_type": "simulation"}
JOB = {"type": "t", "requirements": SIM}


async def _submit(http: Any, **fields: Any) -> str:
    r = await http.post("/api/jobs", json={**JOB, **fields})
    assert r.status_code == 201, r.text
    job_id: str = r.json()["job_id"]
    return job_id


async def _complete(w: RawPeer, a: dict[str, Any], **extra: Any) -> None:
    await w.send(
        {
            "type": "complete_job",
            "job_id": a["job_id"],
            "claim_token": a["claim_token"],
            "result": {},
            **extra,
        }
    )


async def test_an_offer_hides_nothing_from_another_workers_claim(hub: HubHandle) -> None:
    async with (
        hub.client() as http,
        raw_worker(hub.ws_url, "slow") as slow,
        raw_worker(hub.ws_url, "quick") as quick,
    ):
        # Neither worker has a parked claim: the new job is offered to one of them, and
        # stays queued until someone claims it.
        job_id = await _submit(http)
        offered, other = await _first_offered(slow, quick)
        assert (await http.get(f"/api/jobs/{job_id}")).json()["status"] == "queued"
        # The worker that was not offered it claims it at once, however long the other
        # one takes to answer its offer.
        got = await other.request({"type": "claim_job"}, "job_assigned")
        assert got["job_id"] == job_id
        await offered.request({"type": "claim_job"}, "no_job_available")
        rec = (await http.get(f"/api/jobs/{job_id}")).json()
        assert rec["status"] == "assigned"
        assert rec["worker_id"] == ("quick" if other is quick else "slow")


async def test_a_claim_gets_the_older_workflows_step_first(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w") as w:
        # Workflow A started long ago; B just now. B's step is submitted first.
        b_step = await _submit(http, workflow_id="B", workflow_datetime=2_000_000, step_number=1)
        a_step = await _submit(http, workflow_id="A", workflow_datetime=1_000_000, step_number=2)
        await w.send({"type": "claim_job", "max_jobs": 1})
        first = await w.expect("job_assigned")
        assert first["job_id"] == a_step
        await _complete(w, first, claim_next={"max_jobs": 1})
        await w.expect("job_completed_ack")
        second = await w.expect("job_assigned")
        assert second["job_id"] == b_step


async def test_a_parked_claim_is_answered_when_a_job_is_queued(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w") as w:
        await w.send({"type": "claim_job", "wait_seconds": 20})
        # Nothing to give: the claim waits instead of answering no_job_available ...
        await w.request({"type": "ping"}, "pong")
        assert w.taken("no_job_available") == []
        # ... and the job submitted meanwhile is its answer, not an offer.
        job_id = await _submit(http)
        got = await w.expect("job_assigned")
        assert got["job_id"] == job_id
        assert w.taken("job_available") == []
        rec = (await http.get(f"/api/jobs/{job_id}")).json()
        assert (rec["status"], rec["worker_id"]) == ("assigned", "w")
        worker = (await http.get("/api/workers/w")).json()
        assert worker["status"] == "busy"
        assert worker["current_jobs"] == [job_id]


async def test_a_parked_claim_gets_the_best_job_queued_while_it_waits(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w") as w:
        await w.send({"type": "claim_job", "wait_seconds": 20})
        await w.request({"type": "ping"}, "pong")
        jobs = [{**JOB, "priority": p} for p in (10, 90, 50)]
        r = await http.post("/api/jobs/batch", json={"jobs": jobs})
        ids = [j["job_id"] for j in r.json()["jobs"]]
        got = await w.expect("job_assigned")
        assert got["job_id"] == ids[1]


async def test_a_claim_parked_on_one_hub_is_woken_by_a_job_submitted_through_another(
    hub_factory: HubFactory,
) -> None:
    async with (
        hub_factory() as one,
        hub_factory() as two,
        raw_worker(one.ws_url, "w") as w,
        two.client() as http,
    ):
        await w.send({"type": "claim_job", "wait_seconds": 20})
        await w.request({"type": "ping"}, "pong")
        job_id = await _submit(http)
        got = await w.expect("job_assigned")
        assert got["job_id"] == job_id


async def test_a_parked_claim_ends_with_no_job_at_the_end_of_its_wait(
    hub_factory: HubFactory,
) -> None:
    async with hub_factory(claim_wait_max=0.3) as hub, raw_worker(hub.ws_url, "w") as w:
        # The hub advertises how long a claim may wait, and cuts longer waits to it.
        assert w.taken("worker_registered")[0]["claim_wait_max"] == 0.3
        await w.send({"type": "claim_job", "wait_seconds": 600})
        answer = await w.expect("no_job_available", within=5)
        assert answer["worker_id"] == "w"


async def test_an_outcome_with_claim_next_gets_the_next_job_in_the_same_round_trip(
    hub: HubHandle,
) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w") as w:
        first = await _submit(http, priority=90)
        second = await _submit(http, priority=10)
        a = await w.request({"type": "claim_job"}, "job_assigned")
        assert a["job_id"] == first
        await _complete(w, a, claim_next={})
        b = await w.expect("job_assigned")
        assert b["job_id"] == second
        kinds = [m["type"] for m in w.history]
        assert kinds.index("job_completed_ack") < w.history.index(b)  # the ack came first
        # With nothing left, a fail's claim_next with a wait parks until a job comes.
        await w.send(
            {
                "type": "fail_job",
                "job_id": b["job_id"],
                "claim_token": b["claim_token"],
                "error": "boom",
                "retry": False,
                "claim_next": {"wait_seconds": 20},
            }
        )
        await w.expect("job_failed_ack")
        await w.request({"type": "ping"}, "pong")
        assert w.taken("no_job_available") == []
        third = await _submit(http)
        c = await w.expect("job_assigned")
        assert c["job_id"] == third


async def test_release_job_puts_the_job_back_in_its_place_without_an_attempt(
    hub: HubHandle,
) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w") as w:
        first = await _submit(http, priority=90)
        behind = await _submit(http, priority=10)
        a = await w.request({"type": "claim_job"}, "job_assigned")
        await w.send(
            {
                "type": "release_job",
                "job_id": a["job_id"],
                "claim_token": a["claim_token"],
                "reason": "comfyui unreachable",
            }
        )
        ack = await w.expect("job_released_ack")
        assert ack["job_id"] == first
        rec = (await http.get(f"/api/jobs/{first}")).json()
        assert (rec["status"], rec["attempts"], rec["position"]) == ("queued", 0, 1)
        assert (await http.get(f"/api/jobs/{behind}")).json()["position"] == 2
        assert (await http.get("/api/workers/w")).json()["current_jobs"] == []
        # The old token no longer holds it.
        await w.send({"type": "release_job", "job_id": first, "claim_token": a["claim_token"]})
        err = await w.expect("error")
        assert err["job_id"] == first


async def test_an_outcome_that_frees_a_slot_answers_the_parked_claim(hub: HubHandle) -> None:
    caps = {"services": ["simulation"], "performance": {"concurrent_jobs": 2}}
    async with hub.client() as http, raw_worker(hub.ws_url, "w", caps) as w:
        await _submit(http)
        a = await w.request({"type": "claim_job"}, "job_assigned")
        # One slot left: the claim for it parks ...
        await w.send({"type": "claim_job", "wait_seconds": 20})
        await w.request({"type": "ping"}, "pong")
        assert w.taken("no_job_available") == []
        # ... until the worker's slots change: it is answered, then the ack follows.
        await _complete(w, a)
        assert (await w.expect("no_job_available"))["reason"] == "a slot was freed"
        await w.expect("job_completed_ack")


async def test_bad_claim_fields_are_refused_by_name(hub: HubHandle) -> None:
    async with raw_worker(hub.ws_url, "w") as w:
        err = await w.request({"type": "claim_job", "wait_seconds": -1}, "error")
        assert "wait_seconds" in err["error"]
        err = await w.request(
            {"type": "complete_job", "job_id": "j", "claim_token": "t", "claim_next": {"x": 1}},
            "error",
        )
        assert "claim_next.x" in err["error"]
        err = await w.request({"type": "release_job", "job_id": "j"}, "error")
        assert "claim_token" in err["error"]
        # The socket stays open.
        await w.request({"type": "ping"}, "pong")


async def test_cancel_reaches_a_worker_whose_claim_was_parked(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w") as w:
        await w.send({"type": "claim_job", "wait_seconds": 20})
        await w.request({"type": "ping"}, "pong")
        job_id = await _submit(http)
        await w.expect("job_assigned")
        r = await http.post(f"/api/jobs/{job_id}/cancel")
        assert r.status_code == 200
        told = await w.expect("cancel_job", within=2)
        assert told["job_id"] == job_id
        assert (await http.get("/api/workers/w")).json()["status"] == "idle"


async def _first_offered(a: RawPeer, b: RawPeer) -> tuple[RawPeer, RawPeer]:
    """(the one of two raw workers that got the next `job_available`, the other)."""
    ta = asyncio.create_task(a.expect("job_available"))
    tb = asyncio.create_task(b.expect("job_available"))
    done, pending = await asyncio.wait({ta, tb}, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    return (a, b) if ta in done else (b, a)


async def test_a_refused_outcome_still_answers_the_claim_it_carried(hub: HubHandle) -> None:
    async with hub.client() as http, raw_worker(hub.ws_url, "w") as w:
        first = await _submit(http, priority=90)
        a = await w.request({"type": "claim_job"}, "job_assigned")
        assert a["job_id"] == first
        assert (await http.post(f"/api/jobs/{first}/cancel")).status_code == 200
        await w.expect("cancel_job")
        nxt = await _submit(http)
        for kind, extra in (
            ("fail_job", {"error": "boom"}),
            ("complete_job", {"result": {}}),
            ("release_job", {}),
        ):
            await w.send(
                {
                    "type": kind,
                    "job_id": first,
                    "claim_token": a["claim_token"],
                    "claim_next": {},
                    **extra,
                }
            )
            refused = await w.expect("error")
            assert refused["job_id"] == first
            answer = await w.recv()
            while answer["type"] == "job_available":  # the idle worker was told of `nxt`
                answer = await w.recv()
            if kind == "fail_job":  # the slot is free: the claim it carried gets the next job
                assert (answer["type"], answer["job_id"]) == ("job_assigned", nxt)
                b = answer
            else:  # the worker's one slot now holds the next job
                assert (answer["type"], answer["reason"]) == ("no_job_available", "no free slot")
        assert b["job_id"] == nxt
