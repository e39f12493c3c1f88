"""The broker on a real three-node Redis Cluster (`redis+cluster://` URL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from empq.broker import Broker
from empq.config import BrokerSettings
from empq.models import JobSubmission, WorkerCapabilities
from empq.redis_client import is_cluster_url
from empq.redis_server import RedisServer, free_port
from empq.status import JobStatus

from .conftest import FakeClock


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base: Path = tmp_path_factory.mktemp("cluster")
    nodes = []
    for i in range(3):
        (base / str(i)).mkdir()
        # The cluster bus listens on port + 10000.
        nodes.append(
            RedisServer(
                port=free_port(below=55000),
                persistent=False,
                extra_args=[
                    "--cluster-enabled",
                    "yes",
                    "--dir",
                    str(base / str(i)),
                    "--cluster-config-file",
                    "nodes.conf",
                ],
            )
        )
    try:
        for n in nodes:
            n.start()
        clients = [redis.Redis(port=n.port) for n in nodes]
        per = 16384 // 3
        for i, c in enumerate(clients):
            hi = 16383 if i == 2 else (i + 1) * per - 1
            c.execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, hi)
        for n in nodes[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", n.port)
        deadline = time.monotonic() + 20
        while not all(c.cluster("INFO")["cluster_state"] == "ok" for c in clients):
            if time.monotonic() > deadline:
                raise RuntimeError("cluster did not form")
            time.sleep(0.05)  # polling the cluster's own state, with a deadline
        for c in clients:
            c.close()
        yield f"redis+cluster://127.0.0.1:{nodes[0].port}"
    finally:
        for n in nodes:
            n.stop()


async def test_a_job_life_on_a_redis_cluster(cluster_url: str) -> None:
    assert is_cluster_url(cluster_url)
    clock = FakeClock()
    b = await Broker.connect(BrokerSettings(redis_url=cluster_url, key_prefix="c1"), clock=clock)
    try:
        caps = WorkerCapabilities(services=["s"])
        first, second = (
            r.job_id
            for r in await b.submit_many(
                [
                    JobSubmission(type="t", priority=p, requirements={"service_type": "s"})
                    for p in (10, 90)
                ]
            )
        )
        (a,) = await b.claim("w", caps)
        assert a.job.id == second
        await b.progress(second, a.claim_token, 50)
        await b.complete(second, a.claim_token, {"ok": True})
        (c,) = await b.claim("w", caps)
        failed = await b.fail(first, c.claim_token, "flaky")
        assert failed.retry_scheduled
        clock.advance(5)
        assert await b.promote_due() == [first]
        assert (await b.get(first)).position == 1
        assert (await b.cancel(first)).status is JobStatus.CANCELLED
        events = await b.events_since("0-0")
        assert [e.data["status"] for e in events][-1] == "cancelled"
        jobs, _ = await b.list_jobs()
        assert {j.id for j in jobs} == {first, second}
        assert (await b.stats())["completed_total"] == 1
    finally:
        await b.close()
