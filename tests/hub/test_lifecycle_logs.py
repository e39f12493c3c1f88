"""Lifecycle logs: one INFO line per job change, written once, by the hub that applied it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Iterator

import pytest

from empq.logging import JsonFormatter
from tests.support.hub_fixtures import HubFactory, raw_worker

FIELDS = ("event", "job_id", "job_type", "worker_id", "attempt", "duration")


class JobLog(logging.Handler):
    """The `empq.jobs` records, with a wait for the next one (emitted in the loop's thread)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.grew = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.grew.set()

    def of(self, job_id: str) -> list[logging.LogRecord]:
        return [r for r in self.records if getattr(r, "job_id", None) == job_id]

    async def wait_for(self, job_id: str, event: str, within: float = 5.0) -> logging.LogRecord:
        async with asyncio.timeout(within):
            while True:
                found = [r for r in self.of(job_id) if getattr(r, "event", None) == event]
                if found:
                    return found[0]
                self.grew.clear()
                await self.grew.wait()


@pytest.fixture
def joblog() -> Iterator[JobLog]:
    handler = JobLog()
    logger = logging.getLogger("empq.jobs")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_each_change_is_one_line_from_the_hub_that_applied_it(
    hub_factory: HubFactory, joblog: JobLog
) -> None:
    async with (
        hub_factory(retry_delays="0.05") as one,
        hub_factory(retry_delays="0.05") as two,
        raw_worker(two.ws_url, "w-two") as w,
        one.client() as http,
    ):
        r = await http.post("/api/jobs", json={"type": "render", "max_retries": 1})
        job_id = r.json()["job_id"]
        first = await w.request({"type": "claim_job"}, "job_assigned")
        await w.request(
            {
                "type": "fail_job",
                "job_id": job_id,
                "claim_token": first["claim_token"],
                "error": "boom",
                "retry": True,
            },
            "job_failed_ack",
        )
        await joblog.wait_for(job_id, "job_promoted")
        second = await w.request({"type": "claim_job"}, "job_assigned")
        await w.request(
            {
                "type": "complete_job",
                "job_id": job_id,
                "claim_token": second["claim_token"],
                "result": {"ok": True},
            },
            "job_completed_ack",
        )
        await joblog.wait_for(job_id, "job_completed")

    records = joblog.of(job_id)
    events = Counter(r.event for r in records)  # type: ignore[attr-defined]
    # two hubs read every event, yet each change is told once
    assert events == {
        "job_submitted": 1,
        "job_assigned": 2,
        "job_retry_scheduled": 1,
        "job_promoted": 1,
        "job_completed": 1,
    }
    assert all(r.levelno == logging.INFO for r in records)
    by_event = {r.event: r for r in records}  # type: ignore[attr-defined]
    done = by_event["job_completed"]
    assert (done.job_type, done.worker_id, done.attempt) == ("render", "w-two", 2)  # type: ignore[attr-defined]
    assert done.duration >= 0  # type: ignore[attr-defined]
    retry = by_event["job_retry_scheduled"]
    assert (retry.attempt, retry.error, retry.worker_id) == (1, "boom", "w-two")  # type: ignore[attr-defined]
    assigned = [r for r in records if r.event == "job_assigned"]  # type: ignore[attr-defined]
    assert [r.attempt for r in assigned] == [1, 2]  # type: ignore[attr-defined]
    assert job_id in done.getMessage()
    assert "completed" in done.getMessage()


async def test_json_mode_writes_the_fields_as_json(hub_factory: HubFactory, joblog: JobLog) -> None:
    async with hub_factory() as hub, raw_worker(hub.ws_url, "w") as w, hub.client() as http:
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        a = await w.request({"type": "claim_job"}, "job_assigned")
        await w.request(
            {
                "type": "complete_job",
                "job_id": job_id,
                "claim_token": a["claim_token"],
                "result": {},
            },
            "job_completed_ack",
        )
        await joblog.wait_for(job_id, "job_completed")
    lines = [json.loads(JsonFormatter().format(r)) for r in joblog.of(job_id)]
    assert [line["event"] for line in lines] == ["job_submitted", "job_assigned", "job_completed"]
    for line in lines:
        assert set(FIELDS) <= set(line)
        assert line["level"] == "info"
        assert line["logger"] == "empq.jobs"
    assert lines[-1]["worker_id"] == "w"
    assert lines[-1]["attempt"] == 1


async def test_a_lost_worker_and_a_cancel_are_logged(
    hub_factory: HubFactory, joblog: JobLog
) -> None:
    async with hub_factory(heartbeat_timeout=0.5) as hub, hub.client() as http:
        lost = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        async with raw_worker(hub.ws_url, "gone") as w:
            await w.request({"type": "claim_job"}, "job_assigned")
        # gone silent without a graceful disconnect: the attempt counts
        await joblog.wait_for(lost, "job_requeued")
        (requeued,) = [r for r in joblog.of(lost) if r.event == "job_requeued"]  # type: ignore[attr-defined]
        assert requeued.worker_id == "gone"  # type: ignore[attr-defined]
        await http.post(f"/api/jobs/{lost}/cancel")
        await joblog.wait_for(lost, "job_cancelled")


async def test_a_hand_back_is_logged_and_counted_without_an_attempt(
    hub_factory: HubFactory, joblog: JobLog
) -> None:
    async with hub_factory() as hub, raw_worker(hub.ws_url, "w") as w, hub.client() as http:
        job_id = (await http.post("/api/jobs", json={"type": "t"})).json()["job_id"]
        a = await w.request({"type": "claim_job"}, "job_assigned")
        await w.request(
            {
                "type": "release_job",
                "job_id": job_id,
                "claim_token": a["claim_token"],
                "reason": "service down",
            },
            "job_released_ack",
        )
        back = await joblog.wait_for(job_id, "job_handed_back")
        metrics = (await http.get("/metrics")).text
    assert back.worker_id == "w"  # type: ignore[attr-defined]
    assert back.attempt == 1  # type: ignore[attr-defined]
    assert back.reason == "service down"  # type: ignore[attr-defined]
    assert 'empq_job_handbacks_total{type="t"} 1.0' in metrics
    assert "empq_job_retries_total{" not in metrics
