"""What the deployment tests share: hubs, workers and HAProxy as real processes, and
the figures each run reports.

Every test here is a run of the deployed system as an operator would run it: real
`redis-server`, `empq hub` and `empq worker` processes, Debian's `haproxy`; no port is
fixed (hubs bind port 0; HAProxy's ports are picked free and retried if taken).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.child_output import ChildOutput
from tests.support.hub_fixtures import HubProcess

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
WAIT = 20.0


def need_binary(name: str) -> str:
    """The path of `name`, or skip the test saying how to get it."""
    found = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if found is None:
        pytest.skip(f"{name} is not installed (Debian: apt-get install {name})")
    return found


def report(name: str, **figures: Any) -> None:
    """Print the run's figures (shown by `pytest -s` and in CI's log) as one JSON line."""
    print(f"FIGURES {name} {json.dumps(figures, sort_keys=True)}", file=sys.stderr)


async def until(
    check: Callable[[], Awaitable[bool]],
    within: float,
    what: str,
    detail: Callable[[], Awaitable[Any]] | None = None,
) -> None:
    """Poll `check` (every 0.1 s) until it is true; fail saying `what` (and what
    `detail` then tells) after `within` s."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            told = "" if detail is None else f"; {await detail()}"
            raise AssertionError(f"not within {within}s: {what}{told}")
        await asyncio.sleep(0.1)


async def stats_of(http: httpx.AsyncClient) -> Any:
    """`/api/stats` and `/api/workers` as read through `http` (for a failure's message)."""
    try:
        stats = (await http.get("/api/stats")).json()
        workers = (await http.get("/api/workers")).json()
    except (httpx.HTTPError, ValueError) as exc:
        return f"stats unreadable: {exc!r}"
    return {"stats": stats, "workers": workers}


# --------------------------------------------------------------------------- hubs


def hub_env(redis_url: str, base: Path, **env: str) -> dict[str, str]:
    """The environment of one `empq hub` on this machine (ports 0: the OS picks)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("EMPQ_")}
    full.update(
        {
            "EMPQ_REDIS_URL": redis_url,
            "EMPQ_HUB_HOST": "127.0.0.1",
            "EMPQ_HUB_PORT": "0",
            "EMPQ_WS_PORT": "0",
            "EMPQ_DATA_DIR": str(base / "data"),
            "EMPQ_ARTIFACT_DIR": str(base / "artifacts"),
        }
    )
    full.update(env)
    return full


async def start_hubs(redis_url: str, tmp: Path, count: int, **env: str) -> list[HubProcess]:
    """`count` hub processes on one Redis, each ready (`/ready` answered 200)."""
    hubs = []
    for i in range(count):
        base = tmp / f"hub{i}"
        base.mkdir(parents=True, exist_ok=True)
        hub = HubProcess(hub_env(redis_url, base, **env), 0, 0, base / "hub.log")
        await hub.start()
        hubs.append(hub)
    return hubs


# --------------------------------------------------------------------------- workers


@dataclass
class Worker:
    """`empq worker` as a child process with its status port (`/metrics`)."""

    proc: subprocess.Popen[bytes]
    output: ChildOutput
    worker_id: str
    port: int = 0

    async def ready(self, within: float = WAIT) -> None:
        """Until registered with a hub and its status port listens."""
        for text in ("registered with hub", "status port listening on"):
            try:
                found = await self.output.wait_for(text, within)
            except TimeoutError:
                found = False
            assert found, f"no {text!r} in worker {self.worker_id}'s log:\n{self.output.text()}"
        port = re.search(r"status port listening on [^\s:]+:(\d+)", self.output.text())
        assert port, self.output.text()
        self.port = int(port.group(1))

    def registrations(self) -> int:
        """How many times it has registered (once plus once per reconnect)."""
        return self.output.text().count("registered with hub")

    async def completed(self) -> float:
        """Jobs this worker ran to completion (its own counter)."""
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(f"http://127.0.0.1:{self.port}/metrics")).text
        for line in text.splitlines():
            if line.startswith('empq_worker_jobs_total{outcome="completed"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    async def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it outlives 15 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            await asyncio.to_thread(self.proc.wait, 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)


def start_worker(tmp: Path, hub_url: str, hub_http_url: str, **env: str) -> Worker:
    """An `empq worker` (simulation) that reaches the hub at `hub_url` only."""
    worker_id = f"w-{uuid.uuid4().hex[:8]}"
    full = {k: v for k, v in os.environ.items() if not k.startswith("EMPQ_")}
    full.update(
        {
            "EMPQ_HUB_URL": hub_url,
            "EMPQ_HUB_HTTP_URL": hub_http_url,
            "EMPQ_WORKER_ID": worker_id,
            "EMPQ_HTTP_PORT": "0",
            "EMPQ_HEARTBEAT_INTERVAL": "1",
            "EMPQ_LOG_LEVEL": "info",
        }
    )
    full.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "empq.worker"],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Worker(proc, ChildOutput(proc, tmp / f"{worker_id}.log"), worker_id)


# --------------------------------------------------------------------------- HAProxy


def haproxy_config(rest_port: int, ws_port: int, hubs: Sequence[HubProcess]) -> str:
    """deploy/haproxy/haproxy.cfg with its ports and servers set for hubs on this machine.

    Everything else (timeouts, checks, retries, maxconn) is the deployed file's.
    """
    text = HAPROXY_CFG.read_text()
    text = text.replace("bind :3001", f"bind 127.0.0.1:{rest_port}")
    text = text.replace("bind :3002", f"bind 127.0.0.1:{ws_port}")
    text = re.sub(r"^\s*server hub\d.*\n", "", text, flags=re.MULTILINE)
    rest = "".join(f"    server hub{i} 127.0.0.1:{h.http_port} check\n" for i, h in enumerate(hubs))
    ws = "".join(
        f"    server hub{i} 127.0.0.1:{h.ws_port} check port {h.http_port}\n"
        for i, h in enumerate(hubs)
    )
    text = re.sub(r"^backend hubs_rest\n", lambda m: m.group(0) + rest, text, flags=re.M)
    return re.sub(r"^backend hubs_ws\n", lambda m: m.group(0) + ws, text, flags=re.M)


@dataclass
class HAProxy:
    """Debian's haproxy as a child process."""

    proc: subprocess.Popen[bytes]
    output: ChildOutput
    rest_port: int
    ws_port: int
    logs: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/"

    async def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        await asyncio.to_thread(self.proc.wait, 10)


async def start_haproxy(
    tmp: Path, hubs: Sequence[HubProcess], rest_port: int, ws_port: int
) -> HAProxy:
    """HAProxy on these ports in front of `hubs`, once its REST frontend answers `/ready`
    through a hub."""
    binary = need_binary("haproxy")
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(haproxy_config(rest_port, ws_port, hubs))
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
        [binary, "-W", "-db", "-f", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lb = HAProxy(proc, ChildOutput(proc, tmp / "haproxy.log"), rest_port, ws_port)

    async def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"haproxy exited:\n{lb.output.text()}")
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                reply = await http.get(f"{lb.http_url}/ready")
        except httpx.HTTPError:
            return False
        # the header HAProxy sets: not another process that took the port meanwhile
        return reply.status_code == 200 and "x-served-by" in reply.headers

    try:
        await until(answers, WAIT, "haproxy answering /ready")
    except BaseException:
        await lb.stop()
        raise
    return lb


# --------------------------------------------------------------------------- jobs


def sim_jobs(count: int, run: str, *, duration: float, steps: int = 2) -> list[dict[str, Any]]:
    """`count` simulation jobs, each with an idempotency key, so a retried submit of one
    that the hub took before it died returns that job instead of making a second."""
    return [
        {
            "type": "sim",
            "requirements": {"service_type": "simulation"},
            "payload": {"duration": duration, "steps": steps},
            "idempotency_key": f"{run}-{i}",
        }
        for i in range(count)
    ]


async def submit_all(
    http: httpx.AsyncClient, jobs: Iterable[dict[str, Any]], within: float = 60.0
) -> tuple[list[str], int]:
    """Submit each job, retrying a failed call (hub gone, balancer between hubs) with the
    same idempotency key; the ids in order, and how many calls had to be retried."""
    ids: list[str] = []
    retried = 0
    for job in jobs:
        deadline = time.monotonic() + within
        while True:
            try:
                reply = await http.post("/api/jobs", json=job)
                if reply.status_code in (200, 201):
                    ids.append(reply.json()["job_id"])
                    break
            except httpx.HTTPError:
                pass
            retried += 1
            assert time.monotonic() < deadline, f"could not submit {job} within {within}s"
            await asyncio.sleep(0.2)
    return ids, retried


async def job_states(http: httpx.AsyncClient, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Every job's record (read through `http`, retried while a hub is away)."""
    states: dict[str, dict[str, Any]] = {}
    for job_id in ids:
        for _ in range(50):
            try:
                reply = await http.get(f"/api/jobs/{job_id}")
                if reply.status_code == 200:
                    states[job_id] = reply.json()
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    return states


async def completed_count(http: httpx.AsyncClient) -> int:
    """Completed jobs per `/api/stats` (0 while no hub answers)."""
    try:
        reply = await http.get("/api/stats")
    except httpx.HTTPError:
        return 0
    if reply.status_code != 200:
        return 0
    return int(reply.json().get("jobs_by_status", {}).get("completed", 0))
