"""Outcomes outlive a Redis outage: kept, sent again with the same claim, until answered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from empq.redis_server import RedisServer
from empq.worker.outbox import RETRY_MAX, RETRY_MIN, Outbox, retry_delay
from tests.support.hub_fixtures import start_hub
from tests.worker.conftest import WAIT, GateConnector, running_worker, submit, wait_for_job


def test_retry_delay_doubles_from_half_a_second_to_thirty() -> None:
    assert RETRY_MIN / 2 <= retry_delay(1) <= RETRY_MIN
    assert 2 <= retry_delay(4) <= 4
    assert RETRY_MAX / 2 <= retry_delay(50) <= RETRY_MAX


def test_unavailable_keeps_the_outcome_and_a_refusal_settles_it() -> None:
    now = [100.0]
    box = Outbox(clock=lambda: now[0])
    box.add("j1", "complete j1")
    box.sent("j1", delivered=True)
    assert box.due() == []  # waiting for the answer
    assert box.unavailable("j1")
    assert box.jobs == ["j1"]
    now[0] += RETRY_MIN
    assert box.due() == [("j1", "complete j1")]
    assert box.settle("j1")
    assert box.jobs == []
    assert not box.unavailable("j1"), "a settled outcome is not owed any more"


def test_an_unanswered_outcome_goes_again_and_an_undelivered_one_waits_for_a_socket() -> None:
    now = [0.0]
    box = Outbox(clock=lambda: now[0])
    box.add("j1", "a")
    box.sent("j1", delivered=True)
    box.add("j2", "b")
    box.sent("j2", delivered=False)
    now[0] += 60
    assert box.due() == [("j1", "a")]
    assert sorted(box.everything()) == [("j1", "a"), ("j2", "b")]


@pytest.mark.slow
async def test_an_outcome_made_while_redis_is_down_arrives_once_redis_is_back(
    tmp_path: Path,
) -> None:
    always = ["--appendfsync", "always"]
    server = RedisServer(tmp_path / "redis", persistent=True, extra_args=always)
    server.start()
    gate = GateConnector(upload=False)
    try:
        async with (
            start_hub(server.url, tmp_path / "hub") as hub,
            running_worker(hub.ws_url, connectors=[gate]) as worker,
            hub.client() as client,
        ):
            first = await submit(client)
            await wait_for_job(client, first, "in_progress")
            server.kill()
            gate.gate.set()  # the job ends while the hub cannot record it
            # UNAVAILABLE, sent again, UNAVAILABLE, sent again.
            await asyncio.wait_for(worker.link.outbox.wait_resends(2), WAIT)
            assert worker.link.owed_jobs == [first]
            server.start()
            done = await wait_for_job(client, first, within=WAIT + RETRY_MAX)
            assert done["status"] == "completed"
            assert done["attempts"] == 0
            assert gate.started == [first], "the job ran once"
            async with asyncio.timeout(WAIT):
                await worker.link.wait_settled(WAIT)
            # The worker takes work again at once.
            back = asyncio.get_running_loop().time()
            second = await submit(client)
            assert (await wait_for_job(client, second))["status"] == "completed"
            assert asyncio.get_running_loop().time() - back < 5
    finally:
        server.stop()


def test_a_resent_outcome_carries_no_claim() -> None:
    box = Outbox()
    first = '{"type":"complete_job","job_id":"j","claim_token":"t","claim_next":{"max_jobs":1}}'
    box.add("j", first)
    assert box.first("j") == [("j", first)]
    ((_, again),) = box.everything()
    assert '"claim_next"' not in again
    assert '"claim_token":"t"' in again
    box.sent("j", delivered=True)
    assert box.carried_claim("j")
