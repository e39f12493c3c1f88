"""Worker faults with real processes, counted (issue 20).

- A worker SIGKILLed mid-run and restarted at once under the same worker id (what a
  supervisor or a Kubernetes pod with a stable name does), three times in a 300-job run.
- A worker frozen (SIGSTOP) past the heartbeat timeout and resumed, ten times.

Each test prints a FIGURES line (jobs, faults, lost, run twice, stuck, ...). "Completed
twice" counts jobs with more than one accepted result (`job_completed` events); "reruns"
counts jobs a connector started more than once, which a fault may cause (a killed or
frozen worker's job runs again elsewhere) and nothing else may.
"""

from __future__ import annotations

import collections
import signal
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.hub_fixtures import HubProcess, RawPeer
from tests.system.recording import read_runs
from tests.system.support import report
from tests.system.test_resilience import wait_ready
from tests.worker.conftest import WorkerProcess, start_worker_process, stop_workers

pytestmark = pytest.mark.slow

CONNECTOR = "tests.system.recording:Recording"
ACTIVE = ("assigned", "accepted", "in_progress")


class Watch:
    """A monitor socket's messages, read as they come, searched from a position on."""

    def __init__(self, peer: RawPeer) -> None:
        self.peer = peer

    @property
    def now(self) -> int:
        return len(self.peer.history)

    async def until(
        self, fits: Callable[[dict[str, Any]], bool], what: str, since: int = 0, within: float = 30
    ) -> int:
        """Until a message from `since` on fits; the position after it."""
        deadline = time.monotonic() + within
        pos = since
        while True:
            history = self.peer.history
            while pos < len(history):
                pos += 1
                if fits(history[pos - 1]):
                    return pos
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {what} within {within} s")
            self.peer.pending.clear()  # everything stays in `history`, which is what counts
            try:
                await self.peer.recv(min(left, 1.0))
            except TimeoutError:
                continue

    def completed(self) -> collections.Counter[str]:
        return collections.Counter(m["job_id"] for m in self.peer.taken("job_completed"))

    async def all_completed(self, ids: list[str], within: float) -> None:
        wanted = set(ids)

        def done(_: dict[str, Any]) -> bool:
            return wanted <= set(self.completed())

        if not done({}):
            await self.until(done, f"completion of all {len(ids)} jobs", within=within)


def _worker(
    tmp: Path, ws_url: str, runs: Path, worker_id: str, run: int, **env: str
) -> WorkerProcess:
    home = tmp / f"{worker_id}-{run}"
    home.mkdir()
    return start_worker_process(
        home,
        ws_url,
        EMPQ_WORKER_ID=worker_id,
        EMPQ_CONNECTORS=CONNECTOR,
        EMPQ_HTTP_PORT="0",
        EMPQ_TEST_RUNS_FILE=str(runs),
        **env,
    )


async def _submit(client: httpx.AsyncClient, count: int, seconds: float) -> list[str]:
    job = {
        "type": "rec",
        "requirements": {"service_type": "recording"},
        "payload": {"seconds": seconds},
        "max_retries": 10,
    }
    reply = await client.post("/api/jobs/batch", json={"jobs": [job] * count})
    assert reply.status_code == 201, reply.text
    return [j["job_id"] for j in reply.json()["jobs"]]


async def _outcome(
    client: httpx.AsyncClient, ids: list[str], watch: Watch, runs: Path
) -> dict[str, Any]:
    records = [(await client.get(f"/api/jobs/{i}")).json() for i in ids]
    stats = (await client.get("/api/stats")).json()
    started = collections.Counter(j for what, j, _ in read_runs(runs) if what == "start")
    completed = watch.completed()
    return {
        "records": records,
        "lost": sum(1 for r in records if r["status"] != "completed"),
        "completed_twice": sum(1 for i in ids if completed[i] > 1),
        "stuck": sum(stats["jobs_by_status"].get(s, 0) for s in ACTIVE),
        "reruns": sum(1 for i in ids if started[i] > 1),
        "attempts": sum(r["attempts"] for r in records),
    }


JOBS = 300
KILL_AT = (50, 120, 190)
SLOTS = 4


async def test_a_worker_sigkilled_and_restarted_under_its_id_strands_nothing(
    hub_process: Callable[..., AbstractAsyncContextManager[HubProcess]], tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    runs.touch()
    began = time.monotonic()
    env = {"EMPQ_CONCURRENT_JOBS": str(SLOTS), "EMPQ_HEARTBEAT_INTERVAL": "0.5"}
    async with (
        hub_process(EMPQ_HEARTBEAT_TIMEOUT="3") as hubp,
        RawPeer.connect(hubp.ws_url) as peer,
        httpx.AsyncClient(base_url=hubp.http_url, timeout=30) as client,
    ):
        watch = Watch(peer)
        await peer.request({"type": "subscribe_job_notifications"}, "job_notifications_subscribed")
        await peer.request(
            {"type": "subscribe_worker_updates", "enabled": True}, "subscription_confirmed"
        )
        workers = [_worker(tmp_path, hubp.ws_url, runs, w, 0, **env) for w in ("a", "b", "c")]
        killed: list[int] = []
        cut_short: list[int] = []
        try:
            for w in workers:
                await wait_ready(w)
            ids = await _submit(client, JOBS, 0.2)
            for n, at in enumerate(KILL_AT, start=1):
                await watch.until(lambda _, at=at: len(watch.completed()) >= at, f"{at} done")
                victim = workers[0]
                victim.signal(signal.SIGKILL)
                await victim.wait()
                killed.append(victim.proc.pid)
                lines = read_runs(runs)
                began_here = {j for what, j, p in lines if p == victim.proc.pid and what == "start"}
                ended_here = {j for what, j, p in lines if p == victim.proc.pid and what == "done"}
                cut_short.append(len(began_here - ended_here))
                since = watch.now
                workers[0] = _worker(tmp_path, hubp.ws_url, runs, "a", n, **env)
                await wait_ready(workers[0], within=30)
                # The same id takes work again.
                await watch.until(
                    lambda m: (
                        m.get("type") == "job_update"
                        and m.get("worker_id") == "a"
                        and m.get("status") == "assigned"
                    ),
                    "a job assigned to the restarted worker",
                    since=since,
                )
            await watch.all_completed(ids, within=120)
            out = await _outcome(client, ids, watch, runs)
            registrations = sum(
                1 for m in peer.taken("worker_registered") if m.get("worker_id") == "a"
            )
        finally:
            await stop_workers(workers)
    lines = read_runs(runs)
    starts: dict[str, list[int]] = collections.defaultdict(list)
    for what, j, p in lines:
        if what == "start":
            starts[j].append(p)
    # A job may run again only because a killed process had started it.
    rerun_without_a_kill = [
        j for j, ps in starts.items() if len(ps) > 1 and not set(ps[:-1]) <= set(killed)
    ]
    report(
        "worker-sigkill-same-id",
        jobs=JOBS,
        faults=len(killed),
        lost=out["lost"],
        completed_twice=out["completed_twice"],
        stuck=out["stuck"],
        reruns=out["reruns"],
        cut_short_by_kills=cut_short,
        attempts=out["attempts"],
        registrations_of_the_id=registrations,
        seconds=round(time.monotonic() - began, 1),
    )
    assert out["lost"] == 0, [r for r in out["records"] if r["status"] != "completed"]
    assert out["stuck"] == 0
    assert out["completed_twice"] == 0
    assert rerun_without_a_kill == [], rerun_without_a_kill
    # Every job a kill cut short ran again. A job can also run again when its run had
    # ended but its outcome died with the process before the hub recorded it; a slot is
    # freed only once its outcome is settled, so a kill reruns at most the slots' jobs.
    assert sum(cut_short) <= out["reruns"] <= len(killed) * SLOTS
    assert registrations == 1 + len(KILL_AT)


FREEZES = 10


async def test_a_worker_frozen_past_the_heartbeat_timeout_ten_times_comes_back_each_time(
    hub_process: Callable[..., AbstractAsyncContextManager[HubProcess]], tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    runs.touch()
    began = time.monotonic()
    env = {"EMPQ_CONCURRENT_JOBS": "2", "EMPQ_HEARTBEAT_INTERVAL": "0.2"}
    async with (
        hub_process(EMPQ_HEARTBEAT_TIMEOUT="1") as hubp,
        RawPeer.connect(hubp.ws_url) as peer,
        httpx.AsyncClient(base_url=hubp.http_url, timeout=30) as client,
    ):
        watch = Watch(peer)
        await peer.request({"type": "subscribe_job_notifications"}, "job_notifications_subscribed")
        await peer.request(
            {"type": "subscribe_worker_updates", "enabled": True}, "subscription_confirmed"
        )
        frozen = _worker(tmp_path, hubp.ws_url, runs, "f", 0, **env)
        steady = _worker(tmp_path, hubp.ws_url, runs, "s", 0, **env)
        ids: list[str] = []
        drops: list[str] = []
        try:
            await wait_ready(frozen)
            await wait_ready(steady)

            def on_f(kind: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
                return lambda m: (
                    m.get("type") == kind
                    and m.get("worker_id") == "f"
                    and all(m.get(k) == v for k, v in fields.items())
                )

            for cycle in range(FREEZES + 1):
                since = watch.now
                ids += await _submit(client, 8, 0.3)
                # Registered (again), it takes work: a job of this batch starts on it.
                await watch.until(
                    on_f("job_update", status="in_progress"), f"f working, cycle {cycle}", since
                )
                if cycle == FREEZES:
                    break
                since = watch.now
                frozen.signal(signal.SIGSTOP)
                at = await watch.until(on_f("worker_disconnected"), "f dropped", since)
                drops.append(peer.history[at - 1].get("reason", ""))
                frozen.signal(signal.SIGCONT)
                await watch.until(on_f("worker_registered"), "f registered again", at)
            await watch.all_completed(ids, within=120)
            out = await _outcome(client, ids, watch, runs)
            listed = (await client.get("/api/workers/f")).json()
            registrations = sum(
                1 for m in peer.taken("worker_registered") if m.get("worker_id") == "f"
            )
        finally:
            frozen.signal(signal.SIGCONT)
            await stop_workers([frozen, steady])
    report(
        "worker-sigstop-past-heartbeat-timeout",
        jobs=len(ids),
        faults=len(drops),
        lost=out["lost"],
        completed_twice=out["completed_twice"],
        stuck=out["stuck"],
        reruns=out["reruns"],
        attempts=out["attempts"],
        registrations=registrations,
        connected_at_end=listed["connected"],
        seconds=round(time.monotonic() - began, 1),
    )
    assert drops == ["heartbeat timeout"] * FREEZES
    assert out["lost"] == 0, [r for r in out["records"] if r["status"] != "completed"]
    assert out["stuck"] == 0
    assert out["completed_twice"] == 0
    assert registrations == 1 + FREEZES
    assert listed["connected"] is True
    assert listed["status"] != "offline"
    # Only the frozen worker's jobs run again, at most its two slots per freeze.
    assert out["reruns"] <= 2 * FREEZES
